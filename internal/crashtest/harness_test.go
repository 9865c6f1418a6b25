package crashtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/testutil"
	kruntime "github.com/kasync/kasync/runtime"
)

// testDeadlineMargin is how long before go test's -timeout a wait gives up, so the
// failure says why and the children are killed by the cleanups.
const testDeadlineMargin = 20 * time.Second

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

// killed SIGKILLs p and asserts that it died of it.
func (p *proc) killed(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
	var exit *exec.ExitError
	require.ErrorAs(t, p.err, &exit, "%s was killed", p.name)
	require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal(), "%s died of the SIGKILL", p.name)
}

// terminated sends SIGTERM and asserts that p drains and exits 0 within timeout.
func (p *proc) terminated(t *testing.T, timeout time.Duration) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
		require.NoError(t, p.err, "%s exits 0 on SIGTERM", p.name)
	case <-time.After(timeout):
		t.Fatalf("%s did not stop within %s of SIGTERM", p.name, timeout)
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
				"the long sizes (KASYNC_LONG=1, KASYNC_LONG_CHURN=1) may need a longer -timeout", what, testDeadlineMargin)
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

// startBroker runs `kasync broker` (keeping its data in dataDir; "" keeps it in memory)
// and returns its address once it accepts connections and, when topic is not "",
// serves topic with its parts partitions, which it creates.
func startBroker(t *testing.T, bin, logs, dataDir, topic string, parts int) (*proc, []string) {
	t.Helper()
	addr := testutil.FreeAddr(t)
	args := []string{"broker", "--listen", addr, "--data-dir", dataDir}
	if topic != "" {
		args = append(args, "--topics", fmt.Sprintf("%s:%d", topic, parts))
	}
	b := startProc(t, bin, "kasync broker", newLogFile(t, logs, "broker.log"), args...)
	waitFor(t, b, 30*time.Second, "broker accepting connections", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	brokers := []string{addr}
	if topic != "" {
		waitFor(t, b, 30*time.Second, "topic "+topic+" with every partition", func() bool {
			return len(kafkatest.EndOffsets(t, brokers, topic)) == parts
		})
	}
	return b, brokers
}

// writeConfig writes a node's config to a new file and checks it with `kasync config
// check`.
func writeConfig(t *testing.T, bin, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kasync.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o644))
	out, err := exec.Command(bin, "config", "check", path).CombinedOutput()
	require.NoError(t, err, "kasync config check %s:\n%s\n--- the config:\n%s", path, out, yaml)
	return path
}

// worker is a Go SDK worker in the test process serving a registry to schedulers.
type worker struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once Run returned and err is set
	err    error
}

// startWorker runs an SDK worker for reg against addrs, logging its warnings to log.
// It is stopped when the test ends, if not before.
func startWorker(t *testing.T, addrs []string, reg *kruntime.Registry, capacity int, log io.Writer) *worker {
	t.Helper()
	w, err := kruntime.NewWorker(kruntime.WorkerConfig{Addrs: addrs, Registry: reg, Capacity: capacity,
		ReconnectBackoff: 20 * time.Millisecond, MaxReconnectBackoff: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	sw := &worker{cancel: cancel, done: make(chan struct{})}
	go func() {
		sw.err = w.Run(ctx)
		close(sw.done)
	}()
	t.Cleanup(func() {
		if err := sw.stop(); err != nil {
			t.Errorf("the worker stopped with %v", err)
		}
	})
	return sw
}

// stop cancels the worker and waits until it has drained; it may be called again.
func (w *worker) stop() error {
	w.cancel()
	<-w.done
	return w.err
}

// deadLetters reads the dead-letter topic as it grows.
type deadLetters struct {
	cl    *kgo.Client
	byID  map[int][]*kgo.Record
	other []*kgo.Record // records whose value is no event id
}

func newDeadLetters(t *testing.T, brokers []string, topic string) *deadLetters {
	return &deadLetters{byID: map[int][]*kgo.Record{}, cl: kafkatest.Client(t, brokers,
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))}
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

// covered counts the ids below n that succeeded or have a dead letter.
func (d *deadLetters) covered(n int, successes int64, succeeded func(id int) bool) int64 {
	c := successes
	for id := range d.byID {
		if id >= 0 && id < n && !succeeded(id) {
			c++
		}
	}
	return c
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
