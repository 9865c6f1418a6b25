package crashtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/testutil"
	kruntime "github.com/kasync/kasync/runtime"
)

// The run: its topics, the node's bounds and how many times it is killed.
const (
	events       = 100_000
	sourceTopic  = "crash.source"
	sourceParts  = 8
	sourceGroup  = "kasync.crash" // the tailer's default group: kasync.<name>
	deadLetter   = "crash.dead-letter"
	delayPrefix  = "crash.delay"
	rungCount    = 3 // 20ms, 50ms, 200ms
	maxAttempts  = 3
	srcInFlight  = 2000 // tailers[0].max_in_flight
	rungInFlight = 500  // delay.max_in_flight, per rung reader
	maxPending   = 1000 // checkpoint.max_pending

	defaultKills = 10
	longKills    = 30 // KASYNC_LONG=1
	// minProgress is how many new successes show that a restarted node works: more than
	// the worker's capacity, since tasks of the killed node may still finish after it died.
	minProgress    = 1000
	workerCapacity = 256
	// testDeadlineMargin is how long before go test's -timeout a wait gives up, so the
	// failure says why and the children are killed by the cleanups.
	testDeadlineMargin = 20 * time.Second
)

// dupBound is what the design promises a crash costs at most in re-runs: the work a node
// has in flight (source window, every rung reader's window) plus the work completed but
// not yet checkpointed (checkpoint.max_pending).
const dupBound = srcInFlight + rungCount*rungInFlight + maxPending

// nodeConfig is `kasync run`'s config. Ports and the data directory stay the same across
// restarts: the Pebble checkpoints must survive a kill, and the worker reconnects to the
// same gRPC address. The session timeout is the broker's least (6s): a killed node's
// partitions are given to the restarted one only once its old membership expires.
const nodeConfig = `kafka:
  brokers: ["%[1]s"]
  session_timeout: 6s
node:
  data_dir: %[2]s
  grpc_listen: %[3]s
  http_listen: %[4]s
delay:
  topic_prefix: %[5]s
  rungs: [20ms, 50ms, 200ms]
  tolerance: 5ms
  partitions: 4
  max_in_flight: %[6]d
dead_letter:
  topic: %[7]s
checkpoint:
  interval: 50ms
  max_pending: %[8]d
functions:
  - name: fn
    concurrency: 256
    timeout: 5s
    retry: {max_attempts: %[9]d, backoff: [20ms, 50ms]}
tailers:
  - name: crash
    topic: %[10]s
    function: fn
    start: earliest
    max_in_flight: %[11]d
    revoke_timeout: 1s
`

// fate is what the function does with an event, decided by its id and attempt alone so
// that a re-run after a crash behaves as the first run did.
type fate int

const (
	succeeds  fate = iota // at attempt 1
	failsOnce             // retriable at attempt 1 (through the ladder), then succeeds
	exhausted             // retriable at every attempt: dead letter, reason exhausted
	fatal                 // runtime.Fatal at attempt 1: dead letter, reason fatal
)

func fateOf(id int) fate {
	switch {
	case id%1999 == 0:
		return fatal
	case id%997 == 0:
		return exhausted
	case id%50 == 0:
		return failsOnce
	}
	return succeeds
}

// attempts is how many executions the fate needs: the duplicates are the executions
// beyond these.
func (f fate) attempts() int {
	switch f {
	case failsOnce:
		return 2
	case exhausted:
		return maxAttempts
	}
	return 1
}

// reason is the kasync-reason of the fate's dead letter ("" when it succeeds).
func (f fate) reason() string {
	switch f {
	case exhausted:
		return "exhausted"
	case fatal:
		return "fatal"
	}
	return ""
}

func (f fate) outcome(id, attempt int) error {
	switch {
	case f == fatal:
		return kruntime.Fatal(fmt.Errorf("event %d is fatal", id))
	case f == exhausted:
		return fmt.Errorf("event %d always fails (attempt %d)", id, attempt)
	case f == failsOnce && attempt == 1:
		return fmt.Errorf("event %d fails its first attempt", id)
	}
	return nil
}

// ledger records every execution in the test process, outside the killed node.
type ledger struct {
	epoch      atomic.Int32 // crashes so far: a duplicate is charged to the latest
	runs       [][maxAttempts + 1]atomic.Int32
	succeeded  []atomic.Bool
	successes  atomic.Int64 // ids with a successful execution
	executions atomic.Int64
	dups       []atomic.Int64 // duplicate executions by epoch
	bad        atomic.Int64   // tasks that were no event of this run
}

func newLedger(n, kills int) *ledger {
	return &ledger{runs: make([][maxAttempts + 1]atomic.Int32, n), succeeded: make([]atomic.Bool, n),
		dups: make([]atomic.Int64, kills+1)}
}

func (l *ledger) fn(_ context.Context, t *kruntime.Task) error {
	id, err := strconv.Atoi(string(t.Payload))
	if err != nil || id < 0 || id >= len(l.runs) || t.Attempt < 1 {
		l.bad.Add(1)
		return kruntime.Fatal(fmt.Errorf("payload %q attempt %d is no event of this run", t.Payload, t.Attempt))
	}
	l.executions.Add(1)
	f := fateOf(id)
	slot := min(t.Attempt, maxAttempts+1) - 1
	if l.runs[id][slot].Add(1) > 1 || t.Attempt > f.attempts() {
		l.dups[l.epoch.Load()].Add(1)
	}
	err = f.outcome(id, t.Attempt)
	if err == nil && l.succeeded[id].CompareAndSwap(false, true) {
		l.successes.Add(1)
	}
	return err
}

// expectedExecutions is the executions the plan needs without any crash.
func expectedExecutions(n int) int64 {
	var sum int64
	for id := range n {
		sum += int64(fateOf(id).attempts())
	}
	return sum
}

// proc is a kasync child process; it is killed when the test ends, on every path.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and err is set
	err  error
}

func startProc(t *testing.T, bin, name string, log *os.File, args ...string) *proc {
	t.Helper()
	fmt.Fprintf(log, "\n=== %s: kasync %s (%s)\n", name, strings.Join(args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start(), "start %s", name)
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

// kill sends SIGKILL (a no-op once the process is gone) and waits until it has exited.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond until it holds, failing the test at the timeout, when the process
// exits first, or shortly before go test's -timeout would panic with no explanation.
func waitFor(t *testing.T, p *proc, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	testDeadline, hasDeadline := t.Deadline()
	testDeadline = testDeadline.Add(-testDeadlineMargin)
	for !cond() {
		if p != nil && p.exited() {
			t.Fatalf("%s exited (%v) while waiting for %s", p.name, p.err, what)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
		if hasDeadline && time.Now().After(testDeadline) {
			t.Fatalf("still waiting for %s when go test's -timeout is %s away: each restart of a killed node "+
				"waits up to kafka.session_timeout (6s here) for its dead group member's session to expire; "+
				"%d kills (more with KASYNC_LONG=1) may need a longer -timeout", what, testDeadlineMargin, defaultKills)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newLogFile(t *testing.T, dir, name string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = f.Close()
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", name, tail(f.Name(), 150))
		}
	})
	return f
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// startBroker runs `kasync broker` with a data directory, creating the source topic,
// and returns its address once it serves the topic.
func startBroker(t *testing.T, bin, logs string) (*proc, []string) {
	t.Helper()
	addr := testutil.FreeAddr(t)
	b := startProc(t, bin, "kasync broker", newLogFile(t, logs, "broker.log"), "broker", "--listen", addr,
		"--data-dir", t.TempDir(), "--topics", fmt.Sprintf("%s:%d", sourceTopic, sourceParts))
	waitFor(t, b, 30*time.Second, "broker accepting connections", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	brokers := []string{addr}
	waitFor(t, b, 30*time.Second, "source topic with every partition", func() bool {
		return len(kafkatest.EndOffsets(t, brokers, sourceTopic)) == sourceParts
	})
	return b, brokers
}

// writeConfig writes the node's config and checks it with `kasync config check`.
func writeConfig(t *testing.T, bin string, brokers []string, dataDir, grpcAddr string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kasync.yaml")
	yaml := fmt.Sprintf(nodeConfig, brokers[0], dataDir, grpcAddr, testutil.FreeAddr(t), delayPrefix,
		rungInFlight, deadLetter, maxPending, maxAttempts, sourceTopic, srcInFlight)
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o644))
	out, err := exec.Command(bin, "config", "check", path).CombinedOutput()
	require.NoError(t, err, "kasync config check %s:\n%s\n--- the config:\n%s", path, out, yaml)
	return path
}

// deadLetters reads the dead-letter topic as it grows.
type deadLetters struct {
	cl    *kgo.Client
	byID  map[int][]*kgo.Record
	other []*kgo.Record // records whose value is no event id
}

func newDeadLetters(t *testing.T, brokers []string) *deadLetters {
	return &deadLetters{byID: map[int][]*kgo.Record{}, cl: kafkatest.Client(t, brokers,
		kgo.ConsumeTopics(deadLetter), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))}
}

// poll reads what arrived within wait.
func (d *deadLetters) poll(t *testing.T, wait time.Duration) {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	fs := d.cl.PollFetches(ctx)
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			t.Logf("reading %s/%d: %v", topic, p, err)
		}
	})
	fs.EachRecord(func(r *kgo.Record) {
		id, err := strconv.Atoi(string(r.Value))
		if err != nil {
			d.other = append(d.other, r)
			return
		}
		d.byID[id] = append(d.byID[id], r)
	})
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// killPoints spreads kills over the run: the k-th kill comes when a random number of
// events in the k-th of `kills` equal slices of [5%, 90%] of them have succeeded.
func killPoints(rng *rand.Rand, kills, n int) []int64 {
	const lo, hi = 0.05, 0.90
	out := make([]int64, kills)
	width := (hi - lo) / float64(kills)
	for k := range out {
		out[k] = int64(float64(n) * (lo + width*(float64(k)+rng.Float64())))
	}
	return out
}

// crash is what the test saw around one kill.
type crash struct {
	at        time.Duration // since the first start
	succeeded int64         // ids succeeded when it was killed
	resumed   time.Duration // from the killed node's start to its first minProgress successes
}

// TestCrashSafety is issue 3's acceptance test: `kasync run`, against `kasync broker`
// in another process, is killed with SIGKILL at random moments during a 100,000-event
// run with failing events and restarted each time; afterwards every event has a success
// or a dead letter, and the duplicate executions stay within the per-crash bound.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash-safety acceptance test: builds kasync and runs it for a while; skipped with -short")
	}
	kills := defaultKills
	if os.Getenv("KASYNC_LONG") == "1" {
		kills = longKills
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d, %d kills, %d events", seed, kills, events)

	bin := kasyncBinary(t)
	logs := t.TempDir()
	_, brokers := startBroker(t, bin, logs)
	kafkatest.ProduceN(t, brokers, sourceTopic, events, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))}
	})
	end := kafkatest.EndOffsets(t, brokers, sourceTopic)

	grpcAddr := testutil.FreeAddr(t)
	cfgPath := writeConfig(t, bin, brokers, t.TempDir(), grpcAddr)

	// The function runs here, in an SDK worker that reconnects to every restarted node.
	led := newLedger(events, kills)
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", led.fn)
	var workerLog testutil.Buffer
	w, err := kruntime.NewWorker(kruntime.WorkerConfig{Addrs: []string{grpcAddr}, Registry: reg, Capacity: workerCapacity,
		ReconnectBackoff: 20 * time.Millisecond, MaxReconnectBackoff: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&workerLog, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	require.NoError(t, err)
	wctx, stopWorker := context.WithCancel(context.Background())
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	t.Cleanup(func() {
		stopWorker()
		if err := <-werr; err != nil {
			t.Errorf("the worker stopped with %v", err)
		}
		if t.Failed() {
			t.Logf("worker log (warnings):\n%s", workerLog.String())
		}
	})

	nodeLog := newLogFile(t, logs, "node.log")
	startNode := func(k int) *proc {
		return startProc(t, bin, fmt.Sprintf("kasync run #%d", k), nodeLog, "run", "--config", cfgPath)
	}
	began := time.Now()
	node := startNode(0)
	crashes := make([]crash, 0, kills)
	for k, at := range killPoints(rng, kills, events) {
		restarted, base := time.Now(), led.successes.Load()
		var resumed time.Duration
		waitFor(t, node, 3*time.Minute, fmt.Sprintf("%d successes before kill %d", at, k+1), func() bool {
			s := led.successes.Load()
			if resumed == 0 && s >= base+minProgress {
				resumed = time.Since(restarted)
			}
			return s >= at && s >= base+minProgress
		})
		require.NoError(t, node.cmd.Process.Signal(syscall.SIGKILL))
		<-node.done
		var exit *exec.ExitError
		require.ErrorAs(t, node.err, &exit, "%s was killed", node.name)
		require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal(), "%s died of the SIGKILL", node.name)
		crashes = append(crashes, crash{at: time.Since(began), succeeded: led.successes.Load(), resumed: resumed})
		led.epoch.Add(1) // what runs from now on, twice, is this crash's cost
		node = startNode(k + 1)
	}

	// Let the last node finish: every id ends in a success or a dead letter.
	dl := newDeadLetters(t, brokers)
	covered := func() int64 {
		c := led.successes.Load()
		for id := range dl.byID {
			if id >= 0 && id < events && !led.succeeded[id].Load() {
				c++
			}
		}
		return c
	}
	waitFor(t, node, 3*time.Minute, "a success or a dead letter for every event", func() bool {
		dl.poll(t, 50*time.Millisecond)
		return covered() == events
	})
	finished := time.Since(began)
	require.NoError(t, node.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-node.done:
		require.NoError(t, node.err, "%s exits 0 on SIGTERM", node.name)
	case <-time.After(time.Minute):
		t.Fatalf("%s did not stop within a minute of SIGTERM", node.name)
	}
	stopWorker()
	require.NoError(t, <-werr, "the worker drains and stops")
	werr <- nil // for the cleanup

	// The clean stop committed the source to its end.
	committed := map[int32]int64{}
	waitFor(t, nil, 30*time.Second, "source group committed to the log end", func() bool {
		committed = kafkatest.CommittedOffsets(t, brokers, sourceGroup, sourceTopic)
		for p, e := range end {
			if committed[p] != e {
				return false
			}
		}
		return true
	})

	// 0 lost: each event has a success or a dead letter, and the dead letters are
	// exactly the planned ones, with the planned reason, for events that never succeeded.
	require.Zero(t, led.bad.Load(), "tasks that were no event of this run")
	require.Empty(t, dl.other, "dead letters whose value is no event id")
	var lost, wantDead []int
	dupDead := 0
	for id := range events {
		f := fateOf(id)
		recs := dl.byID[id]
		if f.reason() != "" {
			wantDead = append(wantDead, id)
		}
		if !led.succeeded[id].Load() && len(recs) == 0 {
			lost = append(lost, id)
		}
		for a := range f.attempts() {
			require.Positive(t, led.runs[id][a].Load(), "event %d (fate %d) ran attempt %d", id, f, a+1)
		}
		dupDead += max(0, len(recs)-1)
		for _, r := range recs {
			require.Equal(t, f.reason(), header(r, delaystreams.HeaderReason), "event %d's dead letter reason", id)
			require.Equal(t, strconv.Itoa(f.attempts()), header(r, delaystreams.HeaderAttempt), "event %d's dead letter attempt", id)
			require.False(t, led.succeeded[id].Load(), "event %d was dead-lettered and also succeeded", id)
		}
	}
	require.Empty(t, lost, "events with neither a success nor a dead letter")
	gotDead := slices.Sorted(func(yield func(int) bool) {
		for id := range dl.byID {
			if !yield(id) {
				return
			}
		}
	})
	require.Equal(t, wantDead, gotDead, "the dead-lettered events are exactly the planned ones")

	// Bounded duplicates: executions beyond the plan, charged to the crash they followed.
	expected := expectedExecutions(events)
	total := led.executions.Load() - expected
	var perCrash []int64
	var charged int64
	for e := range led.dups {
		d := led.dups[e].Load()
		charged += d
		if e > 0 {
			perCrash = append(perCrash, d)
		}
	}
	require.Equal(t, total, charged, "every execution beyond the plan is charged to an epoch")
	require.Zero(t, led.dups[0].Load(), "no duplicate execution before the first crash")
	var b strings.Builder
	for k, c := range crashes {
		fmt.Fprintf(&b, "\n  crash %2d at %7s, %6d/%d succeeded, the killed node resumed %6s after its start, %5d duplicates after it",
			k+1, c.at.Round(time.Millisecond), c.succeeded, events, c.resumed.Round(time.Millisecond), perCrash[k])
	}
	t.Logf("%d kills; every event done %s after the first start (%d executions, %d planned, %d duplicates, bound %d per crash = %d; %d duplicate dead letters of %d)%s",
		len(crashes), finished.Round(time.Millisecond), led.executions.Load(), expected, total, dupBound,
		int64(len(crashes))*dupBound, dupDead, len(wantDead), b.String())
	require.LessOrEqual(t, total, int64(len(crashes))*dupBound, "duplicate executions within kills × (in flight + not yet checkpointed)")
	require.Equal(t, kills, len(crashes))
}
