package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// AsyncExecutor is an Executor that can hand an attempt over and return before the
// attempt ends: the remote executors, whose attempts mostly wait for a worker in
// another process to answer. The scheduler then holds no goroutine per running
// attempt: one goroutine per function starts attempts, up to the adaptive limit, and
// each attempt ends where its outcome arrives (see the package doc, guarantee 19).
type AsyncExecutor interface {
	Executor
	// Start hands one attempt of w over and returns without waiting for it to end.
	// end is called exactly once, with the attempt's outcome, on any goroutine, and
	// possibly before Start returns; the caller of Start holds no lock that end takes.
	// Start may wait, within ctx, until the executor can take the attempt (a worker
	// with free capacity). timeout counts from when the attempt is handed over. Once
	// ctx is done, every attempt started under it that has not ended ends promptly
	// with a retriable outcome, as Execute would return.
	Start(ctx context.Context, w *Workload, timeout time.Duration, end func(Outcome))
}

// asyncAttempt is one attempt handed to an AsyncExecutor: ended guards its end, so
// that an executor that panics in Start after it called end is not answered twice.
type asyncAttempt struct {
	attempt
	f     *function
	ended atomic.Bool
}

// startAsync hands at over to the function's AsyncExecutor. It is called by the
// function's dispatching worker without f.mu held; the attempt counts in the
// scheduler's workers until it ends, so Close waits for it.
func (f *function) startAsync(ctx context.Context, at *asyncAttempt) {
	f.s.workers.Add(1)
	defer func() {
		if v := recover(); v != nil {
			f.s.repeats.Log(f.s.logger, slog.LevelError, "panic "+f.cfg.Name, "scheduler: executor panicked; the attempt counts as retriable",
				"function", f.cfg.Name, "workload", at.e.w.ID, "panic", v, "stack", string(debug.Stack()))
			at.end(Retriable(ReasonPanic, fmt.Sprintf("executor panicked: %v", v)))
		}
	}()
	at.began = time.Now()
	f.async.Start(ctx, at.e.w, f.cfg.Timeout, at.end)
}

// end ends the attempt with o, the first time it is called: it counts it, answers it
// and feeds the adaptive limit as a worker's finish does, then wakes the dispatching
// worker when another attempt may start.
func (at *asyncAttempt) end(o Outcome) {
	if !at.ended.CompareAndSwap(false, true) {
		return
	}
	f := at.f
	f.finish(&at.attempt, f.checkOutcome(at.e.w, o))
	a := wakeNone
	if f.canStart() {
		a = f.wake()
	}
	f.mu.Unlock()
	f.do(a)
	f.s.workers.Done()
}
