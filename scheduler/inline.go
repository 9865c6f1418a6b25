package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kasync/kasync/internal/deadlinectx"
)

// InlineExecutor is an Executor that can run an attempt on the scheduler's own worker
// goroutine: no goroutine, channel or timer of its own per attempt, which for short
// in-process functions is most of what an attempt costs. The scheduler then keeps
// Executor's promises itself (see the package doc, guarantee 18): it answers an
// attempt at its timeout, or at Close, even if the function has not returned, and
// gives the worker's place to a new goroutine, leaving the old one to finish the
// function on its own.
type InlineExecutor interface {
	Executor
	// ExecuteInline runs one attempt of w on the calling goroutine and returns its
	// outcome when the function returns. ctx carries the attempt's deadline and is
	// done at it, at Close, and once the attempt has been answered. ExecuteInline
	// need not return when ctx is done; an outcome it returns after the scheduler
	// answered the attempt is dropped.
	ExecuteInline(ctx context.Context, w *Workload) Outcome
}

// An inline worker's state word is gen<<2 | phase: gen counts its attempts, so a
// watchdog that judged one attempt late cannot take over the next.
const (
	phaseIdle    = 0 // between attempts
	phaseRunning = 1 // an attempt is running on the worker's goroutine
	phaseTaken   = 2 // the running attempt was taken over: the goroutine is no longer a worker
	phaseMask    = 3
)

// attempt is one attempt in flight, with what ending it needs.
type attempt struct {
	e     entry
	seq   uint64      // the adaptive limit's sequence number
	slot  *slotWaiter // the arbiter's slot it holds; nil without an arbiter
	began time.Time   // when the attempt started
	ctx   *deadlinectx.Context
}

// inline is a worker's side of running an InlineExecutor: the attempt on its stack,
// shared with the two watchdogs that may take it over. The timer takes it over at its
// deadline: armed once and re-armed for the running attempt when it fires, so a worker
// running many short attempts resets no timer per attempt. The shutdown watch (a
// context.AfterFunc on the worker's ctx) takes it over at Close.
//
// Exactly one of the worker (ending the attempt), the timer, the shutdown watch, or
// the worker's own deferred code (a runtime.Goexit) wins the attempt, by a CAS on
// state from running; whoever wins answers it.
type inline struct {
	f    *function
	exec InlineExecutor

	state    atomic.Uint64
	deadline atomic.Int64 // of the running attempt, in nanoseconds since f.s.epoch
	// cur is the running attempt: written by the worker before state says running,
	// read by a taker only after it won the CAS.
	cur attempt
	gen uint64 // the worker's own count of its attempts

	timer     *time.Timer
	armed     atomic.Bool // the timer is pending, or its callback is deciding
	timerMu   sync.Mutex  // serialises the timer's callbacks
	exited    atomic.Bool // the worker's goroutine is ending: re-arm nothing
	unwatch   func() bool // stops the shutdown watch
	abandoned bool        // the attempt was taken over; read and written by the worker only
}

func (f *function) newInline(wctx context.Context, exec InlineExecutor) *inline {
	in := &inline{f: f, exec: exec}
	in.timer = time.AfterFunc(time.Hour, in.expire)
	in.timer.Stop()
	in.unwatch = context.AfterFunc(wctx, in.shutdown)
	return in
}

// run runs a on the calling worker goroutine. It returns false when the attempt was
// taken over (and answered) by another: the goroutine is then no longer a worker.
func (in *inline) run(wctx context.Context, a *attempt) (o Outcome, ok bool) {
	f := in.f
	now := time.Now()
	deadline := now.Add(f.cfg.Timeout)
	a.began = now
	a.ctx = deadlinectx.New(wctx, deadline)
	in.cur = *a
	in.deadline.Store(int64(deadline.Sub(f.s.epoch)))
	in.gen++
	running := in.gen<<2 | phaseRunning
	in.state.Store(running)
	// Close may have begun before the state said running, so its shutdown watch may
	// have looked and found nothing to take over: start no attempt then.
	if f.s.closing.Load() {
		if in.state.CompareAndSwap(running, in.gen<<2|phaseIdle) {
			a.ctx.Release()
			return shutdownOutcome, true
		}
		in.abandoned = true
		return Outcome{}, false
	}
	if !in.armed.Load() && in.armed.CompareAndSwap(false, true) {
		in.timer.Reset(f.cfg.Timeout)
	}
	returned := false
	defer func() {
		if returned {
			return
		}
		// The function ended the goroutine (runtime.Goexit): unwinding goes on past
		// the worker's loop, so the attempt is answered and the worker replaced here.
		in.abandoned = true
		if in.state.CompareAndSwap(running, in.gen<<2|phaseTaken) {
			in.takeOver(Retriable(ReasonPanic, "the executor ended the worker's goroutine (runtime.Goexit) without returning"))
		}
	}()
	o = f.attempt(a.ctx, a.e.w, in.exec)
	returned = true
	if !in.state.CompareAndSwap(running, in.gen<<2|phaseIdle) {
		in.abandoned = true
		return Outcome{}, false
	}
	a.ctx.Release()
	return o, true
}

// takeOver answers the running attempt with o for a worker goroutine that is still in
// it, and puts another goroutine in the worker's place if there is work for it. The
// caller won the CAS to phaseTaken.
func (in *inline) takeOver(o Outcome) {
	f := in.f
	a := &in.cur
	_ = a.ctx.Err() // fixes DeadlineExceeded, or the shutdown's Canceled, before Release
	a.ctx.Release()
	f.finish(a, o)
	f.workers--
	act := wakeNone
	if !f.closed && f.canStart() {
		act = f.wake()
	}
	f.mu.Unlock()
	f.do(act)
	f.s.workers.Done() // for the goroutine that was the worker
}

// expire is the timer's callback: it takes over the running attempt if its deadline
// has passed, re-arms for it if not, and disarms when the worker is idle.
func (in *inline) expire() {
	in.timerMu.Lock()
	defer in.timerMu.Unlock()
	f := in.f
	for {
		if in.exited.Load() {
			in.armed.Store(false)
			return
		}
		s := in.state.Load()
		if s&phaseMask != phaseRunning {
			in.armed.Store(false)
			// An attempt that began after the load above saw armed still set and armed
			// nothing: look again, and arm for it.
			if in.state.Load()&phaseMask == phaseRunning && in.armed.CompareAndSwap(false, true) {
				continue
			}
			return
		}
		// The deadline loaded after s is s's attempt's or a later one's: a later
		// attempt's state differs from s, so the CAS below fails for it.
		left := time.Duration(in.deadline.Load() - int64(time.Since(f.s.epoch)))
		if left > 0 {
			in.timer.Reset(left)
			return
		}
		if !in.state.CompareAndSwap(s, s&^phaseMask|phaseTaken) {
			continue // the attempt ended just now
		}
		in.armed.Store(false)
		w := in.cur.e.w
		f.s.repeats.Log(f.s.logger, slog.LevelWarn, "timeout "+f.cfg.Name, "scheduler: attempt ran past its timeout; answering it as timed out, replacing its worker and leaving the function to finish on its own",
			"function", f.cfg.Name, "workload", w.ID, "attempt", w.Attempt, "timeout", f.cfg.Timeout)
		in.takeOver(Retriable(ReasonTimeout,
			fmt.Sprintf("function %q ran past its timeout of %v", f.cfg.Name, f.cfg.Timeout)))
		return
	}
}

// shutdown is the shutdown watch: at Close (the worker's ctx done) it takes over an
// attempt still running, as an executor's Execute returns when its ctx is done.
func (in *inline) shutdown() {
	s := in.state.Load()
	if s&phaseMask == phaseRunning && in.state.CompareAndSwap(s, s&^phaseMask|phaseTaken) {
		w := in.cur.e.w
		in.takeOver(Retriable(ReasonShutdown,
			fmt.Sprintf("attempt %d of %q was running when the scheduler closed", w.Attempt, w.ID)))
	}
}

// exit stops the watchdogs; the worker's goroutine calls it as it ends, whether it
// was still a worker or not.
func (in *inline) exit() {
	in.exited.Store(true)
	in.unwatch()
	in.timer.Stop()
}
