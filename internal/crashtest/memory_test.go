package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/testutil"
	kruntime "github.com/kasync/kasync/runtime"
)

// The bounds of the backlog test's node, which its measurements are checked against.
const (
	memRecordBytes    = 10 << 10 // 10 KiB values
	memInFlight       = 2000     // tailers[0].max_in_flight
	memConcurrency    = 64       // functions[0].concurrency
	memWorkerCapacity = 128      // the SDK worker's capacity
)

const memNodeConfig = `kafka:
  brokers: ["%[1]s"]
node:
  data_dir: %[2]s
  grpc_listen: %[3]s
  http_listen: %[4]s
delay:
  topic_prefix: %[5]s.delay
  rungs: [20ms, 50ms]
  tolerance: 5ms
  partitions: 2
dead_letter:
  topic: %[5]s.dead-letter
checkpoint:
  interval: 50ms
functions:
  - name: fn
    concurrency: %[6]d
    timeout: 10s
tailers:
  - name: backlog
    topic: %[5]s
    function: fn
    start: earliest
    max_in_flight: %[7]d
`

// backlogRun is what one run of the backlog test measured.
type backlogRun struct {
	records    int
	backlogMiB float64
	took       time.Duration
	peakRSSMiB float64 // the node process's largest VmRSS sampled while it worked
	// peakHeapMiB is the largest go_memstats_heap_inuse_bytes of the node's /metrics.
	peakHeapMiB float64
	maxRunning  int64 // the most executions at once, counted by the function
}

// TestBacklogMemoryIsFlat is issue 4's flow-control proof: `kasync run`, against
// `kasync broker` in another process, works through a backlog of 10 KiB records with a
// slow function served by an SDK worker in this process, once with a backlog and once with
// five times as much. The node's resident memory must not grow with the backlog: the
// tailer's window, the scheduler's concurrency and the worker's capacity bound what is in
// flight, whatever waits in the topic. The function itself checks that the concurrency
// limit is never passed.
func TestBacklogMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("backlog memory test: builds kasync and moves a GiB of records; skipped with -short")
	}
	bin := kasyncBinary(t)
	logs := t.TempDir()
	_, brokers := startBroker(t, bin, logs, "", "", 0)

	small := runBacklog(t, bin, logs, brokers, 20_000)
	large := runBacklog(t, bin, logs, brokers, 100_000)
	for _, r := range []backlogRun{small, large} {
		t.Logf("backlog %7d records (%6.0f MiB): node peak RSS %5.1f MiB, peak heap in use %5.1f MiB, %5.1fs (%.0f rec/s); at most %d running (limit %d)",
			r.records, r.backlogMiB, r.peakRSSMiB, r.peakHeapMiB, r.took.Seconds(), float64(r.records)/r.took.Seconds(),
			r.maxRunning, memConcurrency)
		require.LessOrEqual(t, r.maxRunning, int64(memConcurrency), "functions[0].concurrency was passed")
	}
	// Five times the backlog: the same memory, give or take the runtime's slack. The
	// bound is generous (1.5x + 48 MiB) where a node that buffered its backlog would
	// need 800 MiB more.
	require.Less(t, large.peakRSSMiB, 1.5*small.peakRSSMiB+48,
		"the node's memory grew with the backlog: %.1f MiB for %d records, %.1f MiB for %d",
		small.peakRSSMiB, small.records, large.peakRSSMiB, large.records)
}

// runBacklog produces n records to a new topic, then starts a node and a worker and
// measures them until the group has committed every record.
func runBacklog(t *testing.T, bin, logs string, brokers []string, n int) backlogRun {
	t.Helper()
	topic := "mem-" + strconv.Itoa(n)
	adm := kafkatest.Admin(t, brokers)
	_, err := adm.CreateTopic(context.Background(), 4, 1, nil, topic)
	require.NoError(t, err)
	value := bytes.Repeat([]byte("x"), memRecordBytes)
	kafkatest.ProduceN(t, brokers, topic, n, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: value}
	})
	end := kafkatest.EndOffsets(t, brokers, topic)

	grpcAddr := testutil.FreeAddr(t)
	path := filepath.Join(t.TempDir(), "kasync.yaml")
	httpAddr := testutil.FreeAddr(t)
	yaml := fmt.Sprintf(memNodeConfig, brokers[0], t.TempDir(), grpcAddr, httpAddr, topic, memConcurrency, memInFlight)
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o644))

	var running, maxRunning, done atomic.Int64
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(ctx context.Context, task *kruntime.Task) error {
		now := running.Add(1)
		for m := maxRunning.Load(); now > m && !maxRunning.CompareAndSwap(m, now); m = maxRunning.Load() {
		}
		time.Sleep(time.Millisecond) // slower than reading: the backlog stays in the topic
		running.Add(-1)
		done.Add(1)
		return nil
	})
	w := startWorker(t, []string{grpcAddr}, reg, memWorkerCapacity, io.Discard)
	defer func() { require.NoError(t, w.stop()) }()

	began := time.Now()
	node := startProc(t, bin, "kasync run ("+topic+")", newLogFile(t, logs, topic+".log"), "run", "--config", path)
	var peakRSS, peakHeap int64
	var scraped time.Time
	waitFor(t, node, 3*time.Minute, "every record committed", func() bool {
		peakRSS = max(peakRSS, vmRSS(t, node.cmd.Process.Pid))
		if time.Since(scraped) > 100*time.Millisecond {
			scraped = time.Now()
			peakHeap = max(peakHeap, heapInUse(httpAddr))
		}
		if done.Load() < int64(n) {
			return false
		}
		committed := kafkatest.CommittedOffsets(t, brokers, "kasync.backlog", topic)
		for p, e := range end {
			if committed[p] != e {
				return false
			}
		}
		return true
	})
	took := time.Since(began)
	require.NoError(t, node.cmd.Process.Signal(os.Interrupt))
	<-node.done
	require.NoError(t, node.err, "the node exits 0 on SIGINT")
	_, _ = adm.DeleteTopics(context.Background(), topic)

	return backlogRun{records: n, backlogMiB: float64(n*memRecordBytes) / (1 << 20), took: took,
		peakRSSMiB: float64(peakRSS) / (1 << 20), peakHeapMiB: float64(peakHeap) / (1 << 20), maxRunning: maxRunning.Load()}
}

// heapInUse is go_memstats_heap_inuse_bytes from the node's /metrics, or 0 while it
// does not answer.
func heapInUse(httpAddr string) int64 {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return int64(v)
			}
		}
	}
	return 0
}

// vmRSS is a process's resident set size in bytes, from /proc.
func vmRSS(t *testing.T, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0 // exited between samples; the caller notices
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err, "VmRSS of %d: %q", pid, rest)
			return kb << 10
		}
	}
	return 0
}
