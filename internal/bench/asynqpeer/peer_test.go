package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kasync/kasync/internal/bench/benchproto"
)

// Asynq's Server.Shutdown and the go-redis client's Close stop every goroutine they
// started, so no goroutine needs ignoring.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlagsAreValidatedByName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args   []string
		want   []string // each must appear on stderr
		absent string   // must not appear on stderr
	}{
		{nil, []string{"usage:"}, ""},
		{[]string{"bogus"}, []string{`unknown subcommand "bogus"`}, ""},
		{[]string{"serve"}, []string{"--redis must be host:port", "--n must be ≥ 1"}, ""},
		{[]string{"serve", "--redis", "127.0.0.1:6379", "--n", "5", "--concurrency", "0", "--stall", "0s", "--queue", " "},
			[]string{"--concurrency must be ≥ 1", "--stall must be > 0", "--queue must be"}, ""},
		{[]string{"serve", "--redis", "127.0.0.1:6379", "--n", "5", "--servers", "9", "--concurrency", "4"},
			[]string{"--servers must be between 1 and --concurrency"}, ""},
		{[]string{"serve", "--redis", "127.0.0.1:6379", "--n", "5", "--concurrency", "-1"},
			[]string{"--concurrency must be ≥ 1"}, "--servers must"}, // one cause, one message
		{[]string{"enqueue", "--redis", "localhost", "--n", "0", "--size", "15", "--rate", "-1", "--clients", "0"},
			[]string{"--redis must be host:port", "--n must be ≥ 1", "--size must be ≥ 16", "--rate must be ≥ 0", "--clients must be ≥ 1"}, ""},
		{[]string{"enqueue", "--redis", "127.0.0.1:6379", "--n", "5", "extra"}, []string{`unexpected argument "extra"`}, ""},
		{[]string{"enqueue", "--nope"}, []string{"flag provided but not defined: -nope"}, ""},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), tc.args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d; stderr:\n%s", tc.args, code, exitUsage, &stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%q: stderr lacks %q:\n%s", tc.args, w, &stderr)
			}
		}
		if tc.absent != "" && strings.Contains(stderr.String(), tc.absent) {
			t.Errorf("%q: stderr mentions %q:\n%s", tc.args, tc.absent, &stderr)
		}
		if stdout.Len() > 0 {
			t.Errorf("%q: wrote on stdout: %q", tc.args, &stdout)
		}
	}
}

func TestDue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		elapsed time.Duration
		rate    float64
		n, want int64
	}{
		{0, 2000, 1000, 1},
		{time.Millisecond, 2000, 1000, 3},
		{499 * time.Millisecond, 2000, 1000, 999},
		{500 * time.Millisecond, 2000, 1000, 1000},
		{time.Hour, 2000, 1000, 1000},
		{0, 0, 7, 7},
	} {
		if got := due(tc.elapsed, tc.rate, tc.n); got != tc.want {
			t.Errorf("due(%v, %v, %d) = %d, want %d", tc.elapsed, tc.rate, tc.n, got, tc.want)
		}
	}
}

func payload(idx uint64, stamp time.Time) []byte {
	p := make([]byte, payloadMin)
	benchproto.Stamp(p, stamp)
	binary.BigEndian.PutUint64(p[benchproto.StampSize:], idx)
	return p
}

func TestTallyCountsFirstStartsOnly(t *testing.T) {
	t.Parallel()
	tl := newTally(3)
	base := time.Unix(1000, 0)
	starts := []struct {
		idx     uint64
		at      time.Duration
		counted bool
	}{{0, 20 * time.Millisecond, true}, {1, 10 * time.Millisecond, true}, {0, 30 * time.Millisecond, false}, {2, 40 * time.Millisecond, true}}
	for _, s := range starts {
		counted, malformed := tl.start(payload(s.idx, base), base.Add(s.at))
		if counted != s.counted || malformed {
			t.Fatalf("start %d at %v: counted %v malformed %v", s.idx, s.at, counted, malformed)
		}
		if counted {
			select {
			case <-tl.done:
				t.Fatal("done before the last task returned")
			default:
			}
			tl.returnedOne()
		}
	}
	if _, malformed := tl.start(make([]byte, payloadMin-1), base); !malformed {
		t.Fatal("a 15-byte payload was understood")
	}
	select {
	case <-tl.done:
	default:
		t.Fatal("not done after 3 distinct tasks returned")
	}
	r := tl.result()
	if r.Count != 3 || r.Duplicates != 1 || r.Latency.Count() != 3 ||
		r.FirstStart != base.Add(10*time.Millisecond).UnixNano() || r.LastStart != base.Add(40*time.Millisecond).UnixNano() {
		t.Fatalf("result %+v (latency count %d)", r, r.Latency.Count())
	}
	if got := r.Latency.Max(); got != 40*time.Millisecond {
		t.Fatalf("latency max %v, want 40ms", got)
	}
}

func TestServeFailsClearlyWithoutRedis(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t) // nothing listens there
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"serve", "--redis", addr, "--n", "1"}, &stdout, &stderr)
	if code != exitError || !strings.Contains(stderr.String(), "reaching Redis at --redis "+addr) {
		t.Fatalf("exit %d, stderr:\n%s", code, &stderr)
	}
	if stdout.Len() > 0 {
		t.Fatalf("events without a server: %q", &stdout)
	}
}

func TestEnqueueThenServe(t *testing.T) {
	t.Parallel()
	addr := startRedis(t)
	rep := runEnqueue(t, "--redis", addr, "--n", "2000", "--size", "100", "--clients", "8")
	if rep.Enqueued != 2000 || rep.Seconds <= 0 || rep.Rate <= 0 {
		t.Fatalf("enqueue report %+v", rep)
	}

	events, stderr, code := runServe(t.Context(), t, "--redis", addr, "--n", "2000", "--concurrency", "64",
		"--progress-every", "20ms", "--stall", "20s")
	if code != exitOK {
		t.Fatalf("serve exit %d; stderr:\n%s", code, stderr)
	}
	if len(events) < 2 || events[0].Event != benchproto.EventReady {
		t.Fatalf("events %+v: want ready first", events)
	}
	last := events[len(events)-1]
	if last.Event != benchproto.EventResult {
		t.Fatalf("last event %+v, want the result", last)
	}
	for _, e := range events[1 : len(events)-1] {
		if e.Event != benchproto.EventProgress {
			t.Fatalf("between ready and result: %+v", e)
		}
	}
	r := last.Result
	if r.Count != 2000 || r.Latency.Count() != 2000 || r.Duplicates != 0 {
		t.Fatalf("result count %d latency count %d duplicates %d; want 2000 2000 0", r.Count, r.Latency.Count(), r.Duplicates)
	}
	if r.Rate() <= 0 || r.Latency.Quantile(0.5) <= 0 {
		t.Fatalf("rate %v p50 %v", r.Rate(), r.Latency.Quantile(0.5))
	}
	t.Logf("asynq: enqueue %.0f/s, serve %.0f/s, p50 %v", rep.Rate, r.Rate(), r.Latency.Quantile(0.5))
}

func TestPacedEnqueueKeepsTheRate(t *testing.T) {
	t.Parallel()
	addr := startRedis(t)
	rep := runEnqueue(t, "--redis", addr, "--n", "1000", "--rate", "2000", "--queue", "paced")
	// The last of 1000 tasks falls due at 999/2000 s.
	if rep.Enqueued != 1000 || rep.Seconds < 0.45 {
		t.Fatalf("report %+v: want 1000 tasks in ≥ 0.45s", rep)
	}
	if rep.Seconds > 5 { // far more than a loaded 2-core machine needs
		t.Fatalf("report %+v: pacing lags far behind 2000/s", rep)
	}
}

func TestServeStallsWithoutTasks(t *testing.T) {
	t.Parallel()
	addr := startRedis(t)
	events, stderr, code := runServe(t.Context(), t, "--redis", addr, "--n", "5",
		"--progress-every", "20ms", "--stall", "200ms")
	if code != exitError || !strings.Contains(stderr, "no task started for --stall 200ms (0 of 5 started)") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if events[0].Event != benchproto.EventReady || events[len(events)-1].Event == benchproto.EventResult {
		t.Fatalf("events %+v: want ready and no result", events)
	}
}

func TestServeStopsOnSignalWithoutResult(t *testing.T) {
	t.Parallel()
	addr := startRedis(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond) // stands in for SIGTERM
	defer cancel()
	events, stderr, code := runServe(ctx, t, "--redis", addr, "--n", "5", "--progress-every", "20ms")
	if code != exitError || !strings.Contains(stderr, "stopped after 0 of 5 tasks started") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, e := range events {
		if e.Event == benchproto.EventResult {
			t.Fatalf("a result after a signal: %+v", events)
		}
	}
}

// runEnqueue runs the enqueue subcommand in-process and returns its report line.
func runEnqueue(t *testing.T, args ...string) enqueueReport {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), append([]string{"enqueue"}, args...), &stdout, &stderr); code != exitOK {
		t.Fatalf("enqueue exit %d; stderr:\n%s", code, &stderr)
	}
	var rep enqueueReport
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("enqueue stdout %q: %v", stdout.String(), err)
	}
	return rep
}

// runServe runs the serve subcommand in-process and returns its events, its stderr and
// its exit code.
func runServe(ctx context.Context, t *testing.T, args ...string) ([]benchproto.Event, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append([]string{"serve"}, args...), &stdout, &stderr)
	var events []benchproto.Event
	r := benchproto.NewReader(&stdout)
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("serve stdout: %v", err)
		}
		events = append(events, e)
	}
	return events, stderr.String(), code
}

// freeAddr is a loopback address nothing listens on, a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// startRedis runs a throwaway redis-server on a free loopback port until the test ends,
// and returns its address. It skips the test when redis-server is not installed.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed; make bench-peers installs it")
	}
	dir := t.TempDir()
	var lastErr error
	for range 3 { // the free port may be taken between freeAddr and redis binding it
		addr := freeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		log, err := os.Create(filepath.Join(dir, "redis-"+port+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
		cmd.Stdout, cmd.Stderr = log, log // files: no copying goroutines
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
			_ = log.Close()
		}
		if lastErr = waitRedis(addr, exited); lastErr == nil {
			t.Cleanup(stop)
			return addr
		}
		stop()
		out, _ := os.ReadFile(log.Name())
		lastErr = errors.New(lastErr.Error() + "; its log:\n" + string(out))
	}
	t.Fatalf("redis-server did not start: %v", lastErr)
	return ""
}

// waitRedis waits until the server at addr answers PING, it exits, or 10s pass.
func waitRedis(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server on " + addr + " exited")
		default:
		}
		if pingRedis(addr) == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("redis-server on " + addr + " did not answer PING within 10s")
}

func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return errors.New("PING answered " + strconv.Quote(line))
	}
	return nil
}
