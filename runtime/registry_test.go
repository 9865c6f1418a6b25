package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/testutil"
	kruntime "github.com/kasync/kasync/runtime"
	"github.com/kasync/kasync/scheduler"
)

func workload(function string) *scheduler.Workload {
	return &scheduler.Workload{ID: "orders/0/42", Function: function, Attempt: 1}
}

func newRegistry(t *testing.T) (*kruntime.Registry, *testutil.Buffer) {
	t.Helper()
	logs := &testutil.Buffer{}
	r := kruntime.NewRegistry()
	r.SetLogger(slog.New(slog.NewTextHandler(logs, nil)))
	return r, logs
}

func TestRegistryRegisterErrors(t *testing.T) {
	t.Parallel()
	r := kruntime.NewRegistry()
	ok := func(context.Context, *kruntime.Task) error { return nil }
	require.ErrorContains(t, r.Register("", ok), "name is empty")
	require.ErrorContains(t, r.Register("f", nil), `register "f": the function is nil`)
	require.NoError(t, r.Register("f", ok))
	require.ErrorContains(t, r.Register("f", ok), `register "f": a function with this name is already registered`)
	require.Panics(t, func() { r.MustRegister("f", ok) })
	r.MustRegister("a", ok)
	require.Equal(t, []string{"a", "f"}, r.Names())
	_, found := r.Lookup("a")
	require.True(t, found)
	_, found = r.Lookup("b")
	require.False(t, found)
}

func TestRegistryConcurrentRegisterAndExecute(t *testing.T) {
	t.Parallel()
	r := kruntime.NewRegistry()
	r.MustRegister("f", func(context.Context, *kruntime.Task) error { return nil })
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 100 {
			r.MustRegister("g"+string(rune('a'+i%26))+string(rune('a'+i/26)), func(context.Context, *kruntime.Task) error { return nil })
		}
	})
	var failed []scheduler.Outcome // only the executing goroutine appends, before wg.Wait returns
	wg.Go(func() {
		for range 200 {
			if o := r.Execute(context.Background(), workload("f"), time.Second); o != scheduler.Success() {
				failed = append(failed, o)
			}
		}
	})
	wg.Wait()
	require.Empty(t, failed)
	require.Len(t, r.Names(), 101)
}

func TestExecutePassesTask(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t)
	got := make(chan kruntime.Task, 1)
	r.MustRegister("f", func(ctx context.Context, task *kruntime.Task) error {
		deadline, ok := ctx.Deadline()
		if !ok || time.Until(deadline) > time.Minute {
			return errors.New("the ctx has no deadline of at most the timeout")
		}
		if err := task.Heartbeat(ctx); err != nil {
			return err // in-process, a heartbeat is a no-op
		}
		got <- *task
		return nil
	})
	w := &scheduler.Workload{ID: "orders/3/7", Function: "f", Key: []byte("k"), Payload: []byte("p"),
		Headers: []scheduler.Header{{Key: "h", Value: []byte("v")}}, Attempt: 3}
	require.Equal(t, scheduler.Success(), r.Execute(context.Background(), w, time.Minute))
	task := <-got
	require.Equal(t, "orders/3/7", task.ID)
	require.Equal(t, "f", task.Function)
	require.Equal(t, []byte("k"), task.Key)
	require.Equal(t, []byte("p"), task.Payload)
	require.Equal(t, w.Headers, task.Headers)
	require.Equal(t, 3, task.Attempt)
}

func TestExecuteOutcomes(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t)
	r.MustRegister("ok", func(context.Context, *kruntime.Task) error { return nil })
	r.MustRegister("fails", func(context.Context, *kruntime.Task) error { return errors.New("db down") })
	r.MustRegister("fatal", func(context.Context, *kruntime.Task) error { return kruntime.Fatal(errors.New("bad json")) })
	r.MustRegister("later", func(context.Context, *kruntime.Task) error {
		return kruntime.RetryAfter(time.Minute, errors.New("rate limited"))
	})
	require.Equal(t, scheduler.Success(), r.Execute(context.Background(), workload("ok"), time.Second))
	require.Equal(t, scheduler.Retriable(scheduler.ReasonError, "db down"), r.Execute(context.Background(), workload("fails"), time.Second))
	require.Equal(t, scheduler.Fatal(scheduler.ReasonFatal, "bad json"), r.Execute(context.Background(), workload("fatal"), time.Second))
	require.Equal(t, time.Minute, r.Execute(context.Background(), workload("later"), time.Second).RetryAfter)

	o := r.Execute(context.Background(), workload("missing"), time.Second)
	require.Equal(t, scheduler.Fatal(scheduler.ReasonUnknownFunction, `function "missing" is not registered`), o)
	o = r.RunTask(context.Background(), &kruntime.Task{ID: "x", Function: "missing", Attempt: 1}, time.Second)
	require.Equal(t, scheduler.ReasonUnknownFunction, o.Reason)
}

func TestExecuteRecoversPanic(t *testing.T) {
	t.Parallel()
	r, logs := newRegistry(t)
	r.MustRegister("boom", func(context.Context, *kruntime.Task) error {
		var m map[string]int
		m["x"]++ //nolint:staticcheck // the point: a real nil-map panic inside a function
		return nil
	})
	o := r.Execute(context.Background(), workload("boom"), time.Second)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonPanic, o.Reason)
	require.Contains(t, o.Err, "nil map")
	require.Contains(t, logs.String(), "level=ERROR")
	require.Contains(t, logs.String(), "registry_test.go", "the stack names the panicking function")
	for range 3 {
		r.Execute(context.Background(), workload("boom"), time.Second)
	}
	require.Equal(t, 1, strings.Count(logs.String(), "function panicked"), "a function panicking on every attempt is logged once per 30s, not per attempt")
}

func TestExecuteGoexitIsRetriable(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t)
	r.MustRegister("exits", func(context.Context, *kruntime.Task) error {
		runtime.Goexit()
		return nil
	})
	o := r.Execute(context.Background(), workload("exits"), time.Minute)
	require.Equal(t, scheduler.ReasonPanic, o.Reason)
	require.Contains(t, o.Err, "Goexit")
}

// TestExecuteTimeoutIgnoringCtx checks that Execute returns at the timeout while
// the function, which ignores its ctx, is still running.
func TestExecuteTimeoutIgnoringCtx(t *testing.T) {
	t.Parallel()
	r, logs := newRegistry(t)
	release := make(chan struct{})
	finished := make(chan struct{})
	r.MustRegister("stubborn", func(context.Context, *kruntime.Task) error {
		defer close(finished)
		<-release
		return nil
	})
	start := time.Now()
	o := r.Execute(context.Background(), workload("stubborn"), 20*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonTimeout, o.Reason)
	require.Contains(t, o.Err, "20ms")
	select {
	case <-finished:
		t.Fatal("the function finished; the test proves nothing")
	default:
	}
	require.Contains(t, logs.String(), "level=WARN")
	close(release) // the abandoned goroutine finishes; goleak checks it did
	<-finished
}

func TestExecuteTimeoutRespectingCtx(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t)
	r.MustRegister("polite", func(ctx context.Context, _ *kruntime.Task) error {
		<-ctx.Done()
		return ctx.Err()
	})
	o := r.Execute(context.Background(), workload("polite"), 10*time.Millisecond)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonTimeout, o.Reason)
}

func TestExecuteParentCancelled(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t)
	started := make(chan struct{})
	release := make(chan struct{})
	finished := make(chan struct{})
	r.MustRegister("stubborn", func(context.Context, *kruntime.Task) error {
		defer close(finished)
		close(started)
		<-release
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	o := r.Execute(ctx, workload("stubborn"), time.Minute)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonShutdown, o.Reason)
	close(release)
	<-finished

	// A function that returns ctx's error on cancellation also reports shutdown.
	politeStarted := make(chan struct{})
	r.MustRegister("polite", func(ctx context.Context, _ *kruntime.Task) error {
		close(politeStarted)
		<-ctx.Done()
		return ctx.Err()
	})
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() {
		<-politeStarted
		cancel2()
	}()
	o = r.Execute(ctx2, workload("polite"), time.Minute)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonShutdown, o.Reason)
	// Already cancelled: the function does not start.
	o = r.Execute(ctx2, workload("polite"), time.Minute)
	require.Equal(t, scheduler.ReasonShutdown, o.Reason)
}

// TestRegistryAsSchedulerExecutor runs the registry behind a scheduler, as the
// in-process runtime does.
func TestRegistryAsSchedulerExecutor(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t)
	r.MustRegister("double", func(_ context.Context, task *kruntime.Task) error {
		if len(task.Payload) == 0 {
			return kruntime.Fatal(errors.New("empty payload"))
		}
		return nil
	})
	s, err := scheduler.New(scheduler.Config{
		Logger:    slog.New(slog.DiscardHandler),
		Functions: []scheduler.Function{{Name: "double", Concurrency: 4, Timeout: time.Second, Executor: r}},
	})
	require.NoError(t, err)
	defer s.Close()
	got := make(chan scheduler.Outcome, 2)
	s.Enqueue(&scheduler.Workload{ID: "a", Function: "double", Payload: []byte("1"), Attempt: 1}, func(o scheduler.Outcome) { got <- o })
	s.Enqueue(&scheduler.Workload{ID: "b", Function: "double", Attempt: 1}, func(o scheduler.Outcome) { got <- o })
	kinds := map[scheduler.OutcomeKind]int{}
	for range 2 {
		kinds[(<-got).Kind]++
	}
	require.Equal(t, map[scheduler.OutcomeKind]int{scheduler.OutcomeSuccess: 1, scheduler.OutcomeFatal: 1}, kinds)
}

// TestRegistryInlineBehindScheduler: behind a scheduler the registry runs functions
// on the scheduler's worker goroutines (ExecuteInline); the scheduler still answers
// a function that ignores its ctx at the timeout, and the function sees its deadline.
func TestRegistryInlineBehindScheduler(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t)
	var _ scheduler.InlineExecutor = r
	release := make(chan struct{})
	finished := make(chan struct{})
	r.MustRegister("stubborn", func(context.Context, *kruntime.Task) error {
		defer close(finished)
		<-release
		return nil
	})
	r.MustRegister("polite", func(ctx context.Context, _ *kruntime.Task) error {
		if _, ok := ctx.Deadline(); !ok {
			return kruntime.Fatal(errors.New("no deadline"))
		}
		<-ctx.Done()
		return ctx.Err()
	})
	s, err := scheduler.New(scheduler.Config{
		Logger: slog.New(slog.DiscardHandler),
		Functions: []scheduler.Function{
			{Name: "stubborn", Concurrency: 1, Timeout: 20 * time.Millisecond, Executor: r},
			{Name: "polite", Concurrency: 1, Timeout: 20 * time.Millisecond, Executor: r},
		},
	})
	require.NoError(t, err)
	defer s.Close()
	for _, name := range []string{"stubborn", "polite"} {
		got := make(chan scheduler.Outcome, 1)
		s.Enqueue(&scheduler.Workload{ID: "a", Function: name, Attempt: 1}, func(o scheduler.Outcome) { got <- o })
		o := <-got
		require.Equal(t, scheduler.OutcomeRetriable, o.Kind, name)
		require.Equal(t, scheduler.ReasonTimeout, o.Reason, name)
	}
	close(release)
	<-finished
}
