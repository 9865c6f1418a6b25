package scheduler_test

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
)

func noop(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
	return scheduler.Success()
}

func newScheduler(t *testing.T, cfg scheduler.Config) *scheduler.Scheduler {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := scheduler.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func fn(name string, concurrency int, exec scheduler.ExecutorFunc) scheduler.Function {
	return scheduler.Function{Name: name, Concurrency: concurrency, Timeout: time.Second, Executor: exec}
}

func wl(function, id string) *scheduler.Workload {
	return &scheduler.Workload{ID: id, Function: function, Attempt: 1}
}

// result is a done func and the channel that receives what it was called with.
func result() (func(scheduler.Outcome), <-chan scheduler.Outcome) {
	c := make(chan scheduler.Outcome, 2) // room for a wrong second call, caught by the test
	return func(o scheduler.Outcome) { c <- o }, c
}

func await(t *testing.T, c <-chan scheduler.Outcome) scheduler.Outcome {
	t.Helper()
	select {
	case o := <-c:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("done was not called")
		return scheduler.Outcome{}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := scheduler.New(scheduler.Config{})
	require.ErrorContains(t, err, "Functions is empty")

	_, err = scheduler.New(scheduler.Config{
		MaxWorkloadBytes: -1,
		Functions: []scheduler.Function{
			{Name: "", Concurrency: 1, Timeout: time.Second, Executor: scheduler.ExecutorFunc(noop)},
			{Name: "a", Concurrency: 0, Timeout: 0, Executor: nil},
			{Name: "a", Concurrency: 1, Timeout: time.Second, Executor: scheduler.ExecutorFunc(noop)},
			{Name: "b", Concurrency: 1, Timeout: time.Second, Rate: -5, Executor: scheduler.ExecutorFunc(noop)},
			{Name: "c", Concurrency: 1, Timeout: time.Second, Rate: math.Inf(1), Executor: scheduler.ExecutorFunc(noop)},
		},
	})
	require.Error(t, err)
	// Every problem is reported at once, each naming its field.
	for _, want := range []string{
		"MaxWorkloadBytes is -1",
		`Functions[0] (""): Name is empty`,
		`Functions[1] ("a"): Concurrency is 0; set it to at least 1`,
		`Functions[1] ("a"): Timeout is 0s`,
		`Functions[1] ("a"): Executor is nil`,
		`Functions[2] ("a"): Name duplicates Functions[1]`,
		`Functions[3] ("b"): Rate is -5; set the most starts per second, like 500, or 0 for no limit`,
		`Functions[4] ("c"): Rate is +Inf`,
	} {
		require.ErrorContains(t, err, want)
	}
}

func TestFunctionsAndHas(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{fn("b", 1, noop), fn("a", 1, noop)}})
	require.Equal(t, []string{"a", "b"}, s.Functions())
	require.True(t, s.Has("a"))
	require.False(t, s.Has("c"))
	s.Functions()[0] = "changed"
	require.Equal(t, []string{"a", "b"}, s.Functions(), "Functions returns a copy")
}

func TestEnqueueRefusals(t *testing.T) {
	t.Parallel()
	var ran atomic.Int64
	s := newScheduler(t, scheduler.Config{
		MaxWorkloadBytes: 10,
		Functions: []scheduler.Function{fn("f", 2, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
			ran.Add(1)
			return scheduler.Success()
		})},
	})
	tooBig := wl("f", "big")
	tooBig.Key, tooBig.Payload = []byte("kk"), []byte("pppp")
	tooBig.Headers = []scheduler.Header{{Key: "h", Value: []byte("vvvv")}} // 2+4+1+4 = 11
	fits := wl("f", "fits")
	fits.Payload = []byte("0123456789")
	cases := []struct {
		name   string
		w      *scheduler.Workload
		want   scheduler.Outcome
		errHas string
	}{
		{"nil", nil, scheduler.Fatal(scheduler.ReasonInvalid, ""), "nil"},
		{"empty ID", &scheduler.Workload{Function: "f", Attempt: 1}, scheduler.Fatal(scheduler.ReasonInvalid, ""), "empty ID"},
		{"no function", &scheduler.Workload{ID: "x", Attempt: 1}, scheduler.Fatal(scheduler.ReasonInvalid, ""), "names no function"},
		{"attempt 0", &scheduler.Workload{ID: "x", Function: "f"}, scheduler.Fatal(scheduler.ReasonInvalid, ""), "attempt 0"},
		{"unknown", wl("x", "u"), scheduler.Fatal(scheduler.ReasonUnknownFunction, ""), `function "x" is not configured`},
		{"too large", tooBig, scheduler.Fatal(scheduler.ReasonTooLarge, ""), "11 bytes, limit 10"},
		{"at the limit", fits, scheduler.Success(), ""},
	}
	for _, c := range cases {
		// Done must not run on Enqueue's stack while the scheduler is open. Its own
		// goroutine's stack says so; a flag set around the call would also catch the
		// answerer goroutine running done before Enqueue has returned.
		var calledInside atomic.Bool
		got := make(chan scheduler.Outcome, 2)
		s.Enqueue(c.w, func(o scheduler.Outcome) {
			calledInside.Store(onStack("(*Scheduler).Enqueue"))
			got <- o
		})
		o := await(t, got)
		require.False(t, calledInside.Load(), "%s: done called on Enqueue's stack", c.name)
		require.Equal(t, c.want.Kind, o.Kind, c.name)
		require.Equal(t, c.want.Reason, o.Reason, c.name)
		require.Contains(t, o.Err, c.errHas, c.name)
	}
	require.EqualValues(t, 1, ran.Load())
	require.EqualValues(t, 6, s.Stats().Refused)
}

func TestConcurrencyLimitPerFunction(t *testing.T) {
	t.Parallel()
	limits := map[string]int{"one": 1, "three": 3}
	type counter struct{ cur, peak atomic.Int64 }
	counters := map[string]*counter{"one": {}, "three": {}}
	release := make(chan struct{})
	var fns []scheduler.Function
	for name, limit := range limits {
		c := counters[name]
		fns = append(fns, fn(name, limit, func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			n := c.cur.Add(1)
			defer c.cur.Add(-1)
			for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
			}
			<-release
			return scheduler.Success()
		}))
	}
	s := newScheduler(t, scheduler.Config{Functions: fns})
	var wg sync.WaitGroup
	for name := range limits {
		for i := range 20 {
			wg.Add(1)
			s.Enqueue(wl(name, strconv.Itoa(i)), func(scheduler.Outcome) { wg.Done() })
		}
	}
	require.Eventually(t, func() bool {
		st := s.Stats()
		one, _ := st.Function("one")
		three, _ := st.Function("three")
		return one.Running == 1 && three.Running == 3
	}, 10*time.Second, time.Millisecond)
	st := s.Stats()
	one, _ := st.Function("one")
	require.Equal(t, scheduler.FunctionStats{Name: "one", Tenant: "default", Concurrency: 1, Limit: 1, Queued: 19, Running: 1}, one)
	close(release)
	wg.Wait()
	for name, limit := range limits {
		require.EqualValues(t, limit, counters[name].peak.Load(), name)
		fs, _ := s.Stats().Function(name)
		require.EqualValues(t, 20, fs.Succeeded, name)
		require.Zero(t, fs.Queued+fs.Running, name)
	}
}

func TestExecutorGetsTimeoutAndWorkload(t *testing.T) {
	t.Parallel()
	type call struct {
		w       *scheduler.Workload
		timeout time.Duration
	}
	calls := make(chan call, 1)
	f := fn("f", 1, func(_ context.Context, w *scheduler.Workload, timeout time.Duration) scheduler.Outcome {
		calls <- call{w, timeout}
		return scheduler.Success()
	})
	f.Timeout = 1234 * time.Millisecond
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{f}})
	w := wl("f", "id")
	done, got := result()
	s.Enqueue(w, done)
	require.Equal(t, scheduler.Success(), await(t, got))
	c := <-calls
	require.Same(t, w, c.w)
	require.Equal(t, 1234*time.Millisecond, c.timeout)
}

// logBuffer collects a scheduler's logs as text.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestExecutorPanicIsRetriable(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	s := newScheduler(t, scheduler.Config{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Functions: []scheduler.Function{fn("f", 1, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
			panic("kaboom")
		})},
	})
	for i := range 3 { // the worker survives the panic and serves the next workload
		done, got := result()
		s.Enqueue(wl("f", "p"+strconv.Itoa(i)), done)
		o := await(t, got)
		require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
		require.Equal(t, scheduler.ReasonPanic, o.Reason)
		require.Contains(t, o.Err, "kaboom")
	}
	require.Contains(t, logs.String(), "level=ERROR")
	require.Contains(t, logs.String(), "goroutine ", "the stack is logged")
	require.Equal(t, 1, strings.Count(logs.String(), "executor panicked"), "a function panicking on every attempt is logged once per 30s, not per attempt")
	fs, _ := s.Stats().Function("f")
	require.EqualValues(t, 3, fs.Retriable)
	require.NoError(t, s.Close())
	require.Equal(t, 2, strings.Count(logs.String(), "executor panicked"), "Close logs the count of those not logged")
	require.Contains(t, logs.String(), "suppressed=1")
}

func TestInvalidOutcomeKindIsRetriable(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	s := newScheduler(t, scheduler.Config{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Functions: []scheduler.Function{fn("f", 1, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
			return scheduler.Outcome{Kind: 42, Err: "weird"}
		})},
	})
	done, got := result()
	s.Enqueue(wl("f", "x"), done)
	o := await(t, got)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonError, o.Reason)
	require.Contains(t, o.Err, "invalid outcome kind")
	require.Contains(t, o.Err, "weird")
	require.Contains(t, logs.String(), "level=ERROR")
}

func TestCloseAnswersQueuedAndCancelsRunning(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	s, err := scheduler.New(scheduler.Config{
		Logger: slog.New(slog.DiscardHandler),
		Functions: []scheduler.Function{fn("f", 1, func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			close(started) // only the first workload may ever start
			<-ctx.Done()
			return scheduler.Retriable(scheduler.ReasonTimeout, "cancelled: "+ctx.Err().Error())
		})},
	})
	require.NoError(t, err)
	var outcomes [5]chan scheduler.Outcome
	for i := range outcomes {
		var done func(scheduler.Outcome)
		done, outcomes[i] = func() (func(scheduler.Outcome), chan scheduler.Outcome) {
			c := make(chan scheduler.Outcome, 2)
			return func(o scheduler.Outcome) { c <- o }, c
		}()
		s.Enqueue(wl("f", strconv.Itoa(i)), done)
	}
	<-started
	require.NoError(t, s.Close())
	// Close has waited: every done has been called by now.
	for i, c := range outcomes {
		require.Len(t, c, 1, "workload %d", i)
		o := <-c
		if i == 0 {
			require.Equal(t, scheduler.Retriable(scheduler.ReasonTimeout, "cancelled: context canceled"), o)
		} else {
			require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
			require.Equal(t, scheduler.ReasonShutdown, o.Reason)
		}
	}
	// After Close, Enqueue answers at once with a shutdown outcome.
	done, got := result()
	s.Enqueue(wl("f", "late"), done)
	require.Len(t, got, 1, "after Close, done is called before Enqueue returns")
	require.Equal(t, scheduler.ReasonShutdown, (<-got).Reason)
	require.NoError(t, s.Close(), "Close twice")
	require.EqualValues(t, 5, s.Stats().Refused)
}

// TestEnqueueRacingClose checks that every done is called exactly once while many
// goroutines enqueue across a Close.
func TestEnqueueRacingClose(t *testing.T) {
	t.Parallel()
	s, err := scheduler.New(scheduler.Config{
		Logger:    slog.New(slog.DiscardHandler),
		Functions: []scheduler.Function{fn("f", 4, noop), fn("g", 2, noop)},
	})
	require.NoError(t, err)
	const producers, each = 4, 2000
	var calls [producers * each]atomic.Int32
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				k := p*each + i
				name := "f"
				if k%3 == 0 {
					name = "g"
				} else if k%7 == 0 {
					name = "unknown"
				}
				s.Enqueue(wl(name, strconv.Itoa(k)), func(scheduler.Outcome) { calls[k].Add(1) })
			}
		})
	}
	require.NoError(t, s.Close())
	wg.Wait()
	for k := range calls {
		require.EqualValues(t, 1, calls[k].Load(), "workload %d", k)
	}
}

func TestStatsCountKinds(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{
		fn("f", 2, func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			switch w.ID[0] {
			case 's':
				return scheduler.Success()
			case 'r':
				return scheduler.Retriable(scheduler.ReasonError, "x")
			default:
				return scheduler.Fatal(scheduler.ReasonFatal, "x")
			}
		}),
	}})
	for _, id := range []string{"s1", "s2", "s3", "r1", "r2", "f1"} {
		done, got := result()
		s.Enqueue(wl("f", id), done)
		await(t, got)
	}
	fs, ok := s.Stats().Function("f")
	require.True(t, ok)
	require.EqualValues(t, 6, fs.Durations.Total(), "every attempt's duration, in whichever bucket it took")
	fs.Durations = scheduler.DurationHistogram{}
	require.Equal(t, scheduler.FunctionStats{Name: "f", Tenant: "default", Concurrency: 2, Limit: 2, Succeeded: 3, Retriable: 2, Fatal: 1}, fs)
}

// TestRateLimit: a function limited to r starts per second, with far more workloads
// queued and workers free, starts r per second (±5% over the measured span), in
// admission order, and never more than the bucket's burst at once; another function
// is not slowed by it.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	const r = 200.0
	span := 10 * time.Second
	if testing.Short() {
		span = 2 * time.Second
	}
	var (
		mu     sync.Mutex
		starts []time.Time
		order  []int
	)
	limited := func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		i, _ := strconv.Atoi(w.ID)
		mu.Lock()
		starts = append(starts, time.Now())
		order = append(order, i)
		mu.Unlock()
		return scheduler.Success()
	}
	var free atomic.Int64
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{
		{Name: "limited", Concurrency: 64, Timeout: time.Second, Rate: r, Executor: scheduler.ExecutorFunc(limited)},
		fn("free", 8, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
			free.Add(1)
			return scheduler.Success()
		}),
	}})
	total := int(r*span.Seconds()) + int(r) // more than the span can start
	for i := range total {
		s.Enqueue(wl("limited", strconv.Itoa(i)), func(scheduler.Outcome) {})
	}
	const frees = 10_000
	for i := range frees {
		s.Enqueue(wl("free", strconv.Itoa(i)), func(scheduler.Outcome) {})
	}
	require.Eventually(t, func() bool { return free.Load() == frees }, 10*time.Second, time.Millisecond,
		"a function without a limit is not held back by another's")

	n := steadyStarts(t, &mu, &starts, span)
	mu.Lock()
	defer mu.Unlock()
	want := r * (span - time.Second).Seconds()
	require.InEpsilon(t, want, float64(n), 0.05, "%d starts in %s at %v/s", n, span-time.Second, r)
	// Never more than the burst (a tenth of a second's starts) and the tokens that
	// accrue meanwhile in any 100ms. A start is seen when the waiting goroutine runs, not
	// when its token was granted: on a loaded machine (CI, -race, 2 cores) goroutines
	// whose tokens came a few ms apart can run together, so up to 50ms of such stall is
	// allowed. A limiter that let the burst through twice, or ignored the rate, would
	// still exceed it.
	const window, stall = 100 * time.Millisecond, 50 * time.Millisecond
	bound := int(r/10) + int(r*(window+stall).Seconds()) + 1
	for i := range starts {
		j := i
		for j < len(starts) && starts[j].Sub(starts[i]) < window {
			j++
		}
		require.LessOrEqual(t, j-i, bound, "starts within %v around %d", window, i)
	}
	for i := 1; i < len(order); i++ {
		// Workers take workloads in order; a start may overtake a neighbour by the
		// number of workers waiting for a token at once, not more.
		require.Less(t, order[i-1]-order[i], 64, "start order at %d", i)
	}
}

// TestPrioritiesUnderContention: while a function's one worker is busy, waiting
// workloads start highest priority first, in admission order within a priority.
func TestPrioritiesUnderContention(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var order []string
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{
		fn("f", 1, func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			if w.ID == "blocker" {
				<-release
			}
			mu.Lock()
			order = append(order, w.ID)
			mu.Unlock()
			return scheduler.Success()
		}),
	}})
	blocker := wl("f", "blocker")
	s.Enqueue(blocker, func(scheduler.Outcome) {})
	require.Eventually(t, func() bool {
		st, _ := s.Stats().Function("f")
		return st.Running == 1
	}, 10*time.Second, time.Millisecond)
	var wg sync.WaitGroup
	enqueueMixedPriorities(s, &wg)
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"blocker", "p9", "p5-a", "p5-b", "p1", "p0", "p-3"}, order)
}

// steadyStarts waits until span has passed since the first of starts (guarded by mu),
// then counts those in [first+1s, first+span): past the token bucket's initial burst,
// at the steady rate.
func steadyStarts(t *testing.T, mu *sync.Mutex, starts *[]time.Time, span time.Duration) int {
	t.Helper()
	mu.Lock()
	first := (*starts)[0]
	mu.Unlock()
	require.Eventually(t, func() bool { return time.Since(first) > span+100*time.Millisecond },
		span+10*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	from, to := first.Add(time.Second), first.Add(span)
	n := 0
	for _, at := range *starts {
		if !at.Before(from) && at.Before(to) {
			n++
		}
	}
	return n
}

// onStack reports whether the calling goroutine's stack has a frame whose name
// contains fn.
func onStack(fn string) bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), fn)
}

// enqueueMixedPriorities enqueues six workloads of function "f" with mixed priorities
// (p0, p5-a, p1, p5-b, p9, p-3, in that order), each calling wg.Done when answered.
func enqueueMixedPriorities(s *scheduler.Scheduler, wg *sync.WaitGroup) {
	for _, p := range []struct {
		id   string
		prio int32
	}{{"p0", 0}, {"p5-a", 5}, {"p1", 1}, {"p5-b", 5}, {"p9", 9}, {"p-3", -3}} {
		w := wl("f", p.id)
		w.Priority = p.prio
		wg.Add(1)
		s.Enqueue(w, func(scheduler.Outcome) { wg.Done() })
	}
}
