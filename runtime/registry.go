package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kasync/kasync/internal/logrepeat"
	"github.com/kasync/kasync/scheduler"
)

// Registry maps function names to Funcs and runs them. It implements
// scheduler.Executor for the in-process runtime, and the SDK worker runs tasks
// through RunTask. It is safe for concurrent use; registering is cheap to do
// up front and lookups never take a lock.
type Registry struct {
	mu     sync.Mutex                      // serialises writers of funcs
	funcs  atomic.Pointer[map[string]Func] // copied on write
	logger atomic.Pointer[slog.Logger]
	// repeats keeps lines that can repeat per attempt (panics, timeouts) to one per
	// function and kind every 30s, with a count of the others.
	repeats logrepeat.Limiter
}

// NewRegistry returns an empty registry that logs to slog.Default().
func NewRegistry() *Registry {
	r := &Registry{}
	r.funcs.Store(&map[string]Func{})
	return r
}

// SetLogger sets the logger that receives recovered panics and timeouts; nil means
// slog.Default().
func (r *Registry) SetLogger(l *slog.Logger) { r.logger.Store(l) }

func (r *Registry) log() *slog.Logger {
	if l := r.logger.Load(); l != nil {
		return l
	}
	return slog.Default()
}

// Register adds f under name. It fails if name is empty or taken or f is nil.
func (r *Registry) Register(name string, f Func) error {
	if name == "" {
		return errors.New("runtime: register: name is empty; give the function the name events carry")
	}
	if f == nil {
		return fmt.Errorf("runtime: register %q: the function is nil", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.funcs.Load()
	if _, taken := old[name]; taken {
		return fmt.Errorf("runtime: register %q: a function with this name is already registered", name)
	}
	next := maps.Clone(old)
	next[name] = f
	r.funcs.Store(&next)
	return nil
}

// MustRegister is Register that panics on error, for registrations at start-up.
func (r *Registry) MustRegister(name string, f Func) {
	if err := r.Register(name, f); err != nil {
		panic(err)
	}
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	return slices.Sorted(maps.Keys(*r.funcs.Load()))
}

// Lookup returns the function registered under name.
func (r *Registry) Lookup(name string) (Func, bool) {
	f, ok := (*r.funcs.Load())[name]
	return f, ok
}

// Execute runs one attempt of w with the function registered under w.Function; it
// implements scheduler.Executor.
//
// The function runs on a goroutine of its own with a ctx that is done after
// timeout (no deadline if timeout <= 0) or when ctx is. Execute returns its
// outcome (see Classify) as soon as it returns. If it is still running when its
// ctx is done, Execute does not wait: it returns Retriable(ReasonTimeout) at the
// timeout, or Retriable(ReasonShutdown) when ctx was cancelled, and the function's
// goroutine is left to finish on its own, its result discarded. So a function that
// ignores cancellation cannot stall the scheduler, but it still holds whatever it
// holds until it returns, and may overlap the next attempt of the same workload.
//
// A panic is recovered and logged with its stack: Retriable(ReasonPanic). An
// unregistered name is Fatal(ReasonUnknownFunction).
func (r *Registry) Execute(ctx context.Context, w *scheduler.Workload, timeout time.Duration) scheduler.Outcome {
	f, ok := r.Lookup(w.Function)
	if !ok {
		return unknown(w.Function)
	}
	a := &attempt{task: Task{ID: w.ID, Function: w.Function, Key: w.Key, Payload: w.Payload, Headers: w.Headers, Attempt: w.Attempt}}
	return r.run(ctx, f, a, &a.task, timeout)
}

// ExecuteInline runs one attempt of w with the function registered under w.Function
// on the calling goroutine; it implements scheduler.InlineExecutor, which the
// scheduler prefers to Execute: an in-process attempt then costs no goroutine,
// channel or timer of its own. The scheduler enforces the timeout and shutdown (ctx
// carries the deadline), so a function that ignores its ctx still has its attempt
// answered at the timeout; it goes on running on the goroutine that called it.
//
// Its outcomes are Execute's, except ReasonTimeout and ReasonShutdown for a
// function still running, which the scheduler gives.
func (r *Registry) ExecuteInline(ctx context.Context, w *scheduler.Workload) scheduler.Outcome {
	f, ok := r.Lookup(w.Function)
	if !ok {
		return unknown(w.Function)
	}
	t := &Task{ID: w.ID, Function: w.Function, Key: w.Key, Payload: w.Payload, Headers: w.Headers, Attempt: w.Attempt}
	var o scheduler.Outcome
	r.call(ctx, f, t, &o)
	return o
}

// RunTask runs t with the function registered under t.Function, as Execute does.
// The SDK worker calls it after setting t's heartbeat.
func (r *Registry) RunTask(ctx context.Context, t *Task, timeout time.Duration) scheduler.Outcome {
	f, ok := r.Lookup(t.Function)
	if !ok {
		return unknown(t.Function)
	}
	return r.run(ctx, f, &attempt{}, t, timeout)
}

func unknown(name string) scheduler.Outcome {
	return scheduler.Fatal(scheduler.ReasonUnknownFunction, fmt.Sprintf("function %q is not registered", name))
}

// outcomes recycles the channels that carry an attempt's outcome from the
// function's goroutine to Execute, once the outcome has been received. A channel
// has room for the one send, so a function that finishes after Execute has given up
// never blocks; that channel is dropped, not recycled.
var outcomes = sync.Pool{New: func() any { return make(chan scheduler.Outcome, 1) }}

// attempt is one run of a function, allocated once: it carries the Task (for
// Execute), and what the function's goroutine needs.
type attempt struct {
	task   Task
	r      *Registry
	f      Func
	ctx    context.Context
	result chan scheduler.Outcome
}

func (r *Registry) run(ctx context.Context, f Func, a *attempt, t *Task, timeout time.Duration) scheduler.Outcome {
	if ctx.Err() != nil {
		return cancelled(ctx, t)
	}
	var cancel context.CancelFunc
	if timeout > 0 {
		a.ctx, cancel = context.WithTimeout(ctx, timeout)
	} else {
		a.ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	fctx := a.ctx
	a.r, a.f = r, f
	result := outcomes.Get().(chan scheduler.Outcome)
	a.result = result

	// The hop: Execute must be able to return at the timeout even if f never does,
	// so f cannot run on this goroutine.
	go a.invoke(t)
	select {
	case o := <-result:
		outcomes.Put(result)
		return o
	case <-fctx.Done():
	}
	// It may have returned just as its ctx ended: prefer its own outcome.
	select {
	case o := <-result:
		outcomes.Put(result)
		return o
	default:
	}
	// result stays with the function's goroutine, which will send into it and drop it.
	if ctx.Err() != nil {
		return cancelled(ctx, t)
	}
	r.repeats.Log(r.log(), slog.LevelWarn, "timeout "+t.Function, "runtime: function ran past its timeout and ignores cancellation; its goroutine is left to finish",
		"function", t.Function, "workload", t.ID, "attempt", t.Attempt, "timeout", timeout)
	return scheduler.Retriable(scheduler.ReasonTimeout,
		fmt.Sprintf("function %q ran past its timeout of %v", t.Function, timeout))
}

func cancelled(ctx context.Context, t *Task) scheduler.Outcome {
	return scheduler.Retriable(scheduler.ReasonShutdown,
		fmt.Sprintf("attempt %d of %q cancelled: %v", t.Attempt, t.ID, context.Cause(ctx)))
}

// invoke runs the function on its own goroutine and sends its outcome.
func (a *attempt) invoke(t *Task) {
	var o scheduler.Outcome
	defer func() { a.result <- o }() // also after a runtime.Goexit
	a.r.call(a.ctx, a.f, t, &o)
}

// call runs f on the calling goroutine and sets *o to what it returned, classified. A
// panic, or a function that ends its goroutine with runtime.Goexit, is a retriable
// outcome rather than a lost one: after a Goexit the caller does not go on, but its
// deferred calls find the outcome in *o.
func (r *Registry) call(ctx context.Context, f Func, t *Task, o *scheduler.Outcome) {
	returned := false
	defer func() {
		if v := recover(); v != nil {
			r.repeats.Log(r.log(), slog.LevelError, "panic "+t.Function, "runtime: function panicked; the attempt counts as retriable",
				"function", t.Function, "workload", t.ID, "attempt", t.Attempt, "panic", v, "stack", string(debug.Stack()))
			*o = scheduler.Retriable(scheduler.ReasonPanic, fmt.Sprintf("panic: %v", v))
		} else if !returned {
			*o = scheduler.Retriable(scheduler.ReasonPanic, "the function exited its goroutine without returning (runtime.Goexit)")
		}
	}()
	err := f(ctx, t)
	returned = true
	*o = Classify(err)
	// A function that gives up because its attempt was cancelled (not timed out)
	// reports the scheduler's or worker's shutdown, not an error of its own.
	if o.Kind == scheduler.OutcomeRetriable && o.Reason == scheduler.ReasonError &&
		errors.Is(err, context.Canceled) && ctx.Err() != nil {
		o.Reason = scheduler.ReasonShutdown
	}
}
