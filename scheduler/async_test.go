package scheduler_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/schedulertest"
)

// asyncAdapter runs an Executor as an AsyncExecutor: Start runs Execute on a goroutine
// of its own and ends the attempt with its outcome. Execute stays what it was, so a
// test can tell which of the two the scheduler used.
type asyncAdapter struct {
	scheduler.Executor
	starts *atomic.Int64
}

func (a asyncAdapter) Start(ctx context.Context, w *scheduler.Workload, timeout time.Duration, end func(scheduler.Outcome)) {
	if a.starts != nil {
		a.starts.Add(1)
	}
	go func() { end(a.Execute(ctx, w, timeout)) }()
}

// The conformance suite again, with every function's executor started asynchronously:
// streams, credit, Close and the concurrency cap behave the same with one dispatching
// worker per function.
func TestLocalConformanceAsync(t *testing.T) {
	t.Parallel()
	schedulertest.Run(t, func(t *testing.T, fns []scheduler.Function) schedulertest.Opener {
		async := slices.Clone(fns)
		for i, f := range async {
			async[i].Executor = asyncAdapter{Executor: f.Executor}
		}
		return scheduler.NewLocal(newScheduler(t, scheduler.Config{Functions: async}), schedulertest.Window)
	})
}

// holder is an AsyncExecutor that keeps every attempt until released, or until its
// ctx is done (then it ends it as shutdown, as a pool does).
type holder struct {
	mu       sync.Mutex
	held     []func(scheduler.Outcome)
	inFlight int
	peak     int
	started  chan struct{} // one send per Start
}

func newHolder() *holder { return &holder{started: make(chan struct{}, 1000)} }

func (h *holder) Execute(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
	panic("holder: Execute called; the scheduler should Start its attempts")
}

func (h *holder) Start(ctx context.Context, _ *scheduler.Workload, _ time.Duration, end func(scheduler.Outcome)) {
	var once sync.Once
	ended := func(o scheduler.Outcome) {
		once.Do(func() {
			h.mu.Lock()
			h.inFlight--
			h.mu.Unlock()
			end(o)
		})
	}
	h.mu.Lock()
	h.inFlight++
	h.peak = max(h.peak, h.inFlight)
	h.held = append(h.held, ended)
	h.mu.Unlock()
	context.AfterFunc(ctx, func() { ended(scheduler.Retriable(scheduler.ReasonShutdown, "held attempt cancelled")) })
	h.started <- struct{}{}
}

func (h *holder) waitStarted(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-h.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("fewer than %d attempts started", n)
		}
	}
}

// release ends every held attempt with o.
func (h *holder) release(o scheduler.Outcome) {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	for _, end := range held {
		end(o)
	}
}

// Attempts handed over asynchronously still respect Concurrency: with every attempt
// held, exactly Concurrency are in flight, and the rest start as those end.
func TestAsyncConcurrencyCap(t *testing.T) {
	t.Parallel()
	h := newHolder()
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{{Name: "f", Concurrency: 8, Timeout: time.Minute, Executor: h}}})
	const n = 20
	dones := make([]<-chan scheduler.Outcome, n)
	for i := range n {
		done, c := result()
		dones[i] = c
		s.Enqueue(wl("f", "w"+strconv.Itoa(i)), done)
	}
	h.waitStarted(t, 8)
	st, _ := s.Stats().Function("f")
	require.Equal(t, 8, st.Running)
	for started := 8; started < n; {
		h.release(scheduler.Success())
		next := min(8, n-started)
		h.waitStarted(t, next)
		started += next
	}
	h.release(scheduler.Success())
	for _, c := range dones {
		require.Equal(t, scheduler.Success(), await(t, c))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Equal(t, 8, h.peak, "never more than Concurrency attempts in flight")
}

// Close ends attempts in flight through their ctx, answers each once, and returns
// only after every end.
func TestAsyncCloseEndsAttemptsInFlight(t *testing.T) {
	t.Parallel()
	h := newHolder()
	s, err := scheduler.New(scheduler.Config{Functions: []scheduler.Function{{Name: "f", Concurrency: 4, Timeout: time.Minute, Executor: h}}})
	require.NoError(t, err)
	var dones []<-chan scheduler.Outcome
	for i := range 6 {
		done, c := result()
		dones = append(dones, c)
		s.Enqueue(wl("f", "w"+strconv.Itoa(i)), done)
	}
	h.waitStarted(t, 4)
	require.NoError(t, s.Close())
	for _, c := range dones {
		// Close has returned: every done was called already, exactly once.
		require.Len(t, c, 1)
		o := <-c
		require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
		require.Equal(t, scheduler.ReasonShutdown, o.Reason)
	}
}

// panicky is an AsyncExecutor whose Start panics, after ending the attempt when
// endFirst is set.
type panicky struct{ endFirst bool }

func (p panicky) Execute(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
	return scheduler.Success()
}

func (p panicky) Start(_ context.Context, _ *scheduler.Workload, _ time.Duration, end func(scheduler.Outcome)) {
	if p.endFirst {
		end(scheduler.Success())
	}
	panic("boom")
}

// A Start that panics ends its attempt as retriable, unless it ended the attempt
// before panicking; either way done is called exactly once and the function goes on.
func TestAsyncStartPanics(t *testing.T) {
	t.Parallel()
	for _, endFirst := range []bool{false, true} {
		s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{{Name: "f", Concurrency: 2, Timeout: time.Minute,
			Executor: panicky{endFirst: endFirst}}}})
		var dones []<-chan scheduler.Outcome
		for i := range 3 {
			done, c := result()
			dones = append(dones, c)
			s.Enqueue(wl("f", "w"+strconv.Itoa(i)), done)
		}
		for _, c := range dones {
			o := await(t, c)
			if endFirst {
				require.Equal(t, scheduler.Success(), o)
			} else {
				require.Equal(t, scheduler.ReasonPanic, o.Reason)
				require.Contains(t, o.Err, "boom")
			}
		}
		require.NoError(t, s.Close())
		for _, c := range dones {
			require.Empty(t, c, "done called once")
		}
	}
}

// A gated function (here by a rate limit) waits for its turn per attempt on a worker
// of its own, so it keeps calling Execute; an outcome of no known kind from an
// asynchronous end counts as retriable, as it does from Execute.
func TestAsyncOnlyForUngatedFunctions(t *testing.T) {
	t.Parallel()
	var starts atomic.Int64
	bad := scheduler.ExecutorFunc(func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Outcome{Kind: scheduler.OutcomeKind(99)}
	})
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{
		{Name: "gated", Concurrency: 2, Timeout: time.Minute, Rate: 1000, Executor: asyncAdapter{Executor: noopExec, starts: &starts}},
		{Name: "free", Concurrency: 2, Timeout: time.Minute, Executor: asyncAdapter{Executor: bad, starts: &starts}},
	}})
	done, c := result()
	s.Enqueue(wl("gated", "g"), done)
	require.Equal(t, scheduler.Success(), await(t, c))
	require.Zero(t, starts.Load(), "a gated function's attempt went through Execute")

	done, c = result()
	s.Enqueue(wl("free", "f"), done)
	o := await(t, c)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Contains(t, o.Err, "invalid outcome kind")
	require.EqualValues(t, 1, starts.Load())
}

var noopExec = scheduler.ExecutorFunc(noop)
