package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/testutil"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/schedulertest"
)

// inlineFunc is an InlineExecutor made of a func, as a registry of in-process
// functions is one. Execute is never called when ExecuteInline exists.
type inlineFunc func(ctx context.Context, w *scheduler.Workload) scheduler.Outcome

func (f inlineFunc) ExecuteInline(ctx context.Context, w *scheduler.Workload) scheduler.Outcome {
	return f(ctx, w)
}

func (f inlineFunc) Execute(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
	panic("the scheduler called Execute on an InlineExecutor")
}

func inlineFn(name string, concurrency int, timeout time.Duration, f inlineFunc) scheduler.Function {
	return scheduler.Function{Name: name, Concurrency: concurrency, Timeout: timeout, Executor: f}
}

// An inline attempt runs on the worker's goroutine with a ctx carrying its deadline.
func TestInlineContextCarriesDeadline(t *testing.T) {
	t.Parallel()
	type seen struct {
		deadline time.Time
		ok       bool
		started  time.Time
	}
	got := make(chan seen, 1)
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{
		inlineFn("f", 1, time.Minute, func(ctx context.Context, _ *scheduler.Workload) scheduler.Outcome {
			d, ok := ctx.Deadline()
			got <- seen{d, ok, time.Now()}
			return scheduler.Success()
		}),
	}})
	done, c := result()
	s.Enqueue(wl("f", "a"), done)
	require.Equal(t, scheduler.OutcomeSuccess, await(t, c).Kind)
	g := <-got
	require.True(t, g.ok)
	require.WithinDuration(t, g.started.Add(time.Minute), g.deadline, time.Second)
}

// A function that ignores its ctx is answered at its timeout, and with Concurrency 1
// the next workload runs while it is still stuck: another goroutine took the
// worker's place. Its late outcome is dropped.
func TestInlineTimeoutReplacesTheWorker(t *testing.T) {
	t.Parallel()
	logs := &testutil.Buffer{}
	release := make(chan struct{})
	finished := make(chan struct{})
	var stuckCtxDone atomic.Bool
	s := newScheduler(t, scheduler.Config{
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Functions: []scheduler.Function{
			inlineFn("f", 1, 100*time.Millisecond, func(ctx context.Context, w *scheduler.Workload) scheduler.Outcome {
				if w.ID == "stuck" {
					defer close(finished)
					<-release
					stuckCtxDone.Store(ctx.Err() != nil)
				}
				return scheduler.Success()
			}),
		},
	})
	stuckDone, stuck := result()
	start := time.Now()
	s.Enqueue(wl("f", "stuck"), stuckDone)
	nextDone, next := result()
	s.Enqueue(wl("f", "next"), nextDone)

	o := await(t, stuck)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "answered before its timeout")
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonTimeout, o.Reason)
	require.Contains(t, o.Err, `function "f" ran past its timeout of 100ms`)
	require.Equal(t, scheduler.OutcomeSuccess, await(t, next).Kind, "the next workload ran on a new worker")
	select {
	case <-finished:
		t.Fatal("the stuck function returned; the test proves nothing")
	default:
	}
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "ran past its timeout")

	close(release) // the left goroutine returns; its outcome is dropped and it exits (goleak)
	<-finished
	require.True(t, stuckCtxDone.Load(), "the abandoned attempt's ctx was done")
	select {
	case o := <-stuck:
		t.Fatalf("a second outcome for the stuck workload: %+v", o)
	case <-time.After(20 * time.Millisecond):
	}
	// The function still works, at its Concurrency.
	againDone, again := result()
	s.Enqueue(wl("f", "again"), againDone)
	require.Equal(t, scheduler.OutcomeSuccess, await(t, again).Kind)
}

// Many attempts far shorter than the timeout, one after another on one worker, are
// never taken for late: the watchdog's timer is armed for an old attempt's deadline
// and re-armed for the running one's when it fires. An attempt is only ever answered
// as timed out once its own deadline has passed (a loaded machine may really make a
// short attempt late), and one that does run past its timeout is caught.
func TestInlineShortAttemptsNeverTimeOut(t *testing.T) {
	t.Parallel()
	const n = 3000
	var ran atomic.Int64
	var deadlines sync.Map // workload ID → its attempt's deadline
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{
		inlineFn("f", 2, 10*time.Millisecond, func(ctx context.Context, w *scheduler.Workload) scheduler.Outcome {
			d, _ := ctx.Deadline()
			deadlines.Store(w.ID, d)
			if w.ID == "slow" {
				<-ctx.Done() // a polite function: returns at the deadline, racing the watchdog
				return scheduler.Retriable(scheduler.ReasonTimeout, ctx.Err().Error())
			}
			ran.Add(1)
			if ran.Load()%500 == 0 {
				time.Sleep(3 * time.Millisecond) // the timer fires now and then mid-run
			}
			return scheduler.Success()
		}),
	}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var early []string
	for i := range n {
		wg.Add(1)
		id := fmt.Sprint(i)
		s.Enqueue(wl("f", id), func(o scheduler.Outcome) {
			defer wg.Done()
			if o.Kind == scheduler.OutcomeSuccess {
				return
			}
			d, _ := deadlines.Load(id)
			if o.Reason != scheduler.ReasonTimeout || time.Now().Before(d.(time.Time)) {
				mu.Lock()
				early = append(early, fmt.Sprintf("%s: %+v", id, o))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Empty(t, early, "attempts answered as failed before their deadline")
	require.EqualValues(t, n, ran.Load())

	done, c := result()
	s.Enqueue(wl("f", "slow"), done)
	o := await(t, c)
	require.Equal(t, scheduler.ReasonTimeout, o.Reason)
}

// Close answers an inline attempt whose function ignores its ctx, and returns
// without waiting for it.
func TestInlineCloseDoesNotWaitForAStuckFunction(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{})
	finished := make(chan struct{})
	s, err := scheduler.New(scheduler.Config{
		Logger: slog.New(slog.DiscardHandler),
		Functions: []scheduler.Function{
			inlineFn("f", 1, time.Hour, func(context.Context, *scheduler.Workload) scheduler.Outcome {
				defer close(finished)
				close(started)
				<-release
				return scheduler.Success()
			}),
		},
	})
	require.NoError(t, err)
	done, c := result()
	s.Enqueue(wl("f", "a"), done)
	<-started
	require.NoError(t, s.Close())
	o := await(t, c)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonShutdown, o.Reason)
	close(release)
	<-finished
}

// A polite function returns at Close with its ctx's error, which is what it gets
// answered with, or the scheduler's shutdown outcome: retriable either way.
func TestInlineCloseCancelsTheCtx(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	s, err := scheduler.New(scheduler.Config{
		Logger: slog.New(slog.DiscardHandler),
		Functions: []scheduler.Function{
			inlineFn("f", 1, time.Hour, func(ctx context.Context, _ *scheduler.Workload) scheduler.Outcome {
				close(started)
				<-ctx.Done()
				return scheduler.Retriable(scheduler.ReasonShutdown, ctx.Err().Error())
			}),
		},
	})
	require.NoError(t, err)
	done, c := result()
	s.Enqueue(wl("f", "a"), done)
	<-started
	require.NoError(t, s.Close())
	require.Equal(t, scheduler.ReasonShutdown, await(t, c).Reason)
}

// An executor that ends the worker's goroutine (runtime.Goexit) costs its attempt,
// answered as a panic, and not the worker: the function goes on.
func TestInlineGoexitReplacesTheWorker(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{
		inlineFn("f", 1, time.Minute, func(_ context.Context, w *scheduler.Workload) scheduler.Outcome {
			if w.ID == "exits" {
				runtime.Goexit()
			}
			return scheduler.Success()
		}),
	}})
	done, c := result()
	s.Enqueue(wl("f", "exits"), done)
	o := await(t, c)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonPanic, o.Reason)
	require.Contains(t, o.Err, "Goexit")
	for i := range 3 {
		done, c := result()
		s.Enqueue(wl("f", fmt.Sprint(i)), done)
		require.Equal(t, scheduler.OutcomeSuccess, await(t, c).Kind)
	}
}

// A panic is recovered on the worker's goroutine and the worker lives on.
func TestInlinePanicIsRetriable(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{
		inlineFn("f", 1, time.Minute, func(_ context.Context, w *scheduler.Workload) scheduler.Outcome {
			if w.ID == "boom" {
				panic("boom")
			}
			return scheduler.Success()
		}),
	}})
	done, c := result()
	s.Enqueue(wl("f", "boom"), done)
	require.Equal(t, scheduler.ReasonPanic, await(t, c).Reason)
	done, c = result()
	s.Enqueue(wl("f", "fine"), done)
	require.Equal(t, scheduler.OutcomeSuccess, await(t, c).Kind)
}

// Under a mix of attempts that end in time, run past their timeout, exit their
// goroutine or panic, from many enqueuers and with Close racing the last of them,
// every workload gets exactly one outcome, of the kind its behaviour calls for, and
// at most Concurrency attempts that have not been answered run at once.
func TestInlineExactlyOnceUnderTakeovers(t *testing.T) {
	t.Parallel()
	const (
		concurrency = 4
		n           = 2000
		timeout     = 40 * time.Millisecond
	)
	release := make(chan struct{})
	var live, maxLive atomic.Int64
	var deadlines sync.Map // workload index → its attempt's deadline
	s, err := scheduler.New(scheduler.Config{
		Logger: slog.New(slog.DiscardHandler),
		Functions: []scheduler.Function{
			inlineFn("f", concurrency, timeout, func(ctx context.Context, w *scheduler.Workload) scheduler.Outcome {
				var i int
				_, _ = fmt.Sscan(w.ID, &i)
				d, _ := ctx.Deadline()
				deadlines.Store(i, d)
				switch i % 50 {
				case 7: // stuck: answered by the watchdog, left running until the end
					<-release
					return scheduler.Success()
				case 13:
					runtime.Goexit()
				case 21:
					panic("boom")
				case 33: // polite: returns when its ctx is done, at its deadline or Close
					<-ctx.Done()
					if ctx.Err() == context.Canceled {
						return scheduler.Retriable(scheduler.ReasonShutdown, "closed")
					}
					return scheduler.Retriable(scheduler.ReasonTimeout, "deadline")
				}
				if v := live.Add(1); v > maxLive.Load() {
					maxLive.Store(v) // racy maximum; only ever too low, never too high
				}
				runtime.Gosched()
				live.Add(-1)
				return scheduler.Success()
			}),
		},
	})
	require.NoError(t, err)
	var mu sync.Mutex
	outcomes := make(map[int][]scheduler.Outcome, n)
	answered := make(map[int]time.Time, n)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < n; i += 4 {
				s.Enqueue(wl("f", fmt.Sprint(i)), func(o scheduler.Outcome) {
					mu.Lock()
					outcomes[i] = append(outcomes[i], o)
					answered[i] = time.Now()
					mu.Unlock()
				})
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(outcomes) > n/2
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, s.Close()) // races the rest; a stuck function does not hold it
	close(release)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, outcomes, n, "every workload answered")
	for i, os := range outcomes {
		require.Len(t, os, 1, "workload %d answered %d times", i, len(os))
		o := os[0]
		if o.Reason == scheduler.ReasonShutdown {
			continue // dropped or cut short by Close
		}
		if o.Reason == scheduler.ReasonTimeout {
			d, ok := deadlines.Load(i)
			require.True(t, ok, "workload %d timed out without starting", i)
			require.False(t, answered[i].Before(d.(time.Time)), "workload %d answered before its deadline", i)
			if i%50 != 7 && i%50 != 33 {
				continue // a slow machine made an ordinary attempt late: allowed, not early
			}
		}
		switch i % 50 {
		case 7, 33:
			require.Equal(t, scheduler.ReasonTimeout, o.Reason, "workload %d", i)
		case 13, 21:
			require.Equal(t, scheduler.ReasonPanic, o.Reason, "workload %d", i)
		default:
			require.Equal(t, scheduler.OutcomeSuccess, o.Kind, "workload %d: %+v", i, o)
		}
	}
	require.LessOrEqual(t, maxLive.Load(), int64(concurrency))
}

// inlineAdapter runs an Executor as an InlineExecutor: ExecuteInline calls Execute,
// with the function's timeout, on the worker's goroutine.
type inlineAdapter struct {
	scheduler.Executor
	timeout time.Duration
}

func (a inlineAdapter) ExecuteInline(ctx context.Context, w *scheduler.Workload) scheduler.Outcome {
	return a.Execute(ctx, w, a.timeout)
}

// The conformance suite again, with every function's executor run inline: streams,
// credit, Close and the concurrency cap behave the same over the inline workers.
func TestLocalConformanceInline(t *testing.T) {
	t.Parallel()
	schedulertest.Run(t, func(t *testing.T, fns []scheduler.Function) schedulertest.Opener {
		inline := slices.Clone(fns)
		for i, f := range inline {
			inline[i].Executor = inlineAdapter{Executor: f.Executor, timeout: f.Timeout}
		}
		return scheduler.NewLocal(newScheduler(t, scheduler.Config{Functions: inline}), schedulertest.Window)
	})
}
