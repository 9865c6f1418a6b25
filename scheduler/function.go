package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// function is the state of one configured function: its queue and its workers.
type function struct {
	s      *Scheduler
	cfg    Function
	tenant *tenant

	limiter *rate.Limiter  // nil: no rate limit
	inline  InlineExecutor // the Executor, when it runs attempts inline; else nil
	// async is the Executor, when it hands attempts over without holding a worker
	// (and the function is not gated); else nil. One worker then starts them all.
	async AsyncExecutor
	// gated: a wait (a rate limit's token, the arbiter's slot) comes before each
	// start, so a worker claims a queued workload, waits, then pops.
	gated bool

	mu       sync.Mutex
	cond     sync.Cond // on mu; signalled when a worker may start an attempt
	q        queue
	closed   bool
	workers  int // started, at most cfg.Concurrency
	idle     int // waiting on cond and not yet signalled
	active   int // attempts popped and not finished: what the adaptive limit bounds
	claiming int // workers between their claim and their pop, each for one queued workload

	adapt     aimd
	held      bool        // new starts wait for the hold timer (a Retry-After)
	holdTimer *time.Timer // ends the hold; armed while held
	holdArmed bool        // the timer's callback is pending; it counts in Scheduler.workers

	running   atomic.Int64
	durations durations // of attempts, for kasync_workload_duration_seconds
	succeeded atomic.Uint64
	retriable atomic.Uint64
	fatal     atomic.Uint64
}

// canStart reports whether one more worker may claim a queued workload: there is one
// nobody claimed, the running and claimed attempts are under the adaptive limit, and
// no Retry-After holds the function. Called with f.mu held.
func (f *function) canStart() bool {
	return f.q.Len() > f.claiming && f.active+f.claiming < f.adapt.Limit() && !f.held
}

// wakeAction is what wake decided, done by do after f.mu is released.
type wakeAction uint8

const (
	wakeNone wakeAction = iota
	wakeSignal
	wakeSpawn
)

// wake picks a worker to claim a workload that canStart allows: an idle one, or a new
// one while there are fewer than Concurrency. A worker busy with an attempt rechecks
// when it ends, so a function at its worker bound needs no wake. Called with f.mu held.
func (f *function) wake() wakeAction {
	if f.idle > 0 {
		f.idle--
		return wakeSignal
	}
	if f.workers < f.maxWorkers() {
		f.workers++
		f.s.workers.Add(1) // before Close can mark f closed, so before workers.Wait
		return wakeSpawn
	}
	return wakeNone
}

// maxWorkers is how many workers the function may have: one per running attempt, or
// one in all when attempts are started asynchronously.
func (f *function) maxWorkers() int {
	if f.async != nil {
		return 1
	}
	return f.cfg.Concurrency
}

// passOn is the wake-up a worker that just took work passes on: one more worker, if
// the worker is fresh and another could start. Called with f.mu held.
func (f *function) passOn(fresh bool) wakeAction {
	if fresh && f.canStart() {
		return f.wake()
	}
	return wakeNone
}

func (f *function) do(a wakeAction) {
	switch a {
	case wakeSignal:
		f.cond.Signal()
	case wakeSpawn:
		go f.work()
	}
}

// work is one worker: it runs queued attempts one at a time until Close. A function
// never has more than Concurrency workers, so never more running attempts; the
// adaptive limit and holds keep surplus workers waiting on cond.
//
// With an InlineExecutor the attempts run on this goroutine (see inline). One that
// outlives its timeout, or Close, is answered by a watchdog, which starts another
// worker in this one's place; this goroutine then leaves the loop when the function
// returns, no longer counted as a worker.
func (f *function) work() {
	var slot *slotWaiter
	if f.s.arb != nil {
		slot = newSlotWaiter()
	}
	// Attempts run under a context of this worker's own: each attempt's context (an
	// executor adds its timeout) then registers with a parent that only this goroutine
	// uses, instead of with the scheduler's, whose lock every worker of every function
	// would take twice per attempt. Close still reaches every attempt through it.
	wctx, cancel := context.WithCancel(f.s.ctx)
	var in *inline
	if f.inline != nil {
		in = f.newInline(wctx, f.inline)
	}
	defer func() {
		if in != nil {
			in.exit()
		}
		cancel()
		if in == nil || !in.abandoned {
			f.s.workers.Done()
		}
	}()
	// fresh: the worker was just started or woken. A fresh worker that takes work
	// passes the wake-up on when more could start, so a burst wakes workers one after
	// another as each gets to run, not all at once on the enqueuer's goroutine; a worker
	// looping from one attempt to the next wakes none.
	fresh := true
	f.mu.Lock()
	for {
		for !f.closed && !f.canStart() {
			f.idle++
			f.cond.Wait()
			fresh = true
		}
		if f.closed {
			f.mu.Unlock()
			return
		}
		if f.gated {
			f.claiming++
			a := f.passOn(fresh)
			fresh = false
			f.mu.Unlock()
			f.do(a)
			ok := f.waitTurn(slot)
			f.mu.Lock()
			f.claiming--
			if !ok {
				continue // closed
			}
		}
		// Popped only now, after any wait, so the start takes the highest priority
		// waiting at this moment.
		e, ok := f.q.Pop()
		if !ok { // Close drained the queue while this worker waited for a slot
			if slot != nil {
				f.s.arb.release(f.tenant.idx, slot, 0)
			}
			continue
		}
		f.active++
		f.running.Add(1)
		if f.async != nil {
			// Handed over, not awaited: this worker goes on starting attempts while
			// the limit allows, and each ends where its outcome arrives.
			at := &asyncAttempt{attempt: attempt{e: e, seq: f.adapt.Start()}, f: f}
			f.mu.Unlock()
			f.startAsync(wctx, at)
			f.mu.Lock()
			continue
		}
		at := attempt{e: e, seq: f.adapt.Start(), slot: slot}
		a := f.passOn(fresh)
		fresh = false
		f.mu.Unlock()
		f.do(a)

		var o Outcome
		if in != nil {
			if o, ok = in.run(wctx, &at); !ok {
				return // taken over and answered; another worker took this one's place
			}
		} else {
			at.began = time.Now()
			o = f.attempt(wctx, e.w, nil)
		}
		f.finish(&at, o)
	}
}

// finish ends an attempt with o: counts it, frees its arbiter slot, answers it and
// feeds the adaptive limit. It returns with f.mu held.
func (f *function) finish(a *attempt, o Outcome) {
	latency := time.Since(a.began)
	f.durations.observe(latency)
	if f.adapt.latencyFactor <= 0 {
		latency = 0 // the adaptive limit does not watch latency
	}
	switch o.Kind {
	case OutcomeSuccess:
		f.succeeded.Add(1)
	case OutcomeFatal:
		f.fatal.Add(1)
	default:
		f.retriable.Add(1)
	}
	f.running.Add(-1)
	if a.slot != nil {
		f.s.arb.release(f.tenant.idx, a.slot, time.Since(a.slot.at))
	}
	a.e.done(o)

	f.mu.Lock()
	f.active--
	f.observe(a.seq, o, latency)
}

// waitTurn waits for the function's rate limit, its tenant's rate limit and a slot
// from the arbiter, whichever it has, in that order: tokens before the slot, so a
// rate-limited function never holds a shared slot idle. Tokens are granted in the
// order they were asked for, so starts stay in queue order. It returns false when
// Close ended a wait; the claimed workload is then answered from the queue, as
// shutdown.
func (f *function) waitTurn(slot *slotWaiter) bool {
	ctx := f.s.ctx
	if f.limiter != nil && f.limiter.Wait(ctx) != nil {
		return false
	}
	if f.tenant.limiter != nil && f.tenant.limiter.Wait(ctx) != nil {
		return false
	}
	if slot != nil {
		return f.s.arb.acquire(ctx, f.tenant.idx, slot)
	}
	return true
}

// observe feeds an outcome to the adaptive limit: it starts a hold for a Retry-After
// and wakes a worker when the limit grew. Called with f.mu held, after done, so the
// limit reacts as soon as the worker is back for its next attempt.
func (f *function) observe(seq uint64, o Outcome, latency time.Duration) {
	if f.adapt.disabled {
		return
	}
	before := f.adapt.Limit()
	var now time.Time
	if o.Reason == ReasonOverloaded && o.RetryAfter > 0 {
		now = time.Now()
	}
	f.adapt.Observe(now, seq, o, latency)
	after := f.adapt.Limit()
	if after < before {
		f.s.logger.Debug("scheduler: adaptive limit decreased", "function", f.cfg.Name,
			"limit", after, "reason", o.Reason, "err", o.Err)
	}
	if until := f.adapt.HeldUntil(); !now.IsZero() && !f.held && until.After(now) {
		f.hold(until.Sub(now))
	}
	if after > before && f.canStart() {
		f.do(f.wake()) // rare: under f.mu is fine
	}
}

// hold stops new starts until the hold timer fires after d. The pending callback
// counts in Scheduler.workers, so Close waits for it or stops it. Called with f.mu held.
func (f *function) hold(d time.Duration) {
	f.s.logger.Debug("scheduler: downstream asked for quiet; holding new starts",
		"function", f.cfg.Name, "for", d, "limit", f.adapt.Limit())
	f.held, f.holdArmed = true, true
	f.s.workers.Add(1) // the caller is a worker, so the count is not zero
	if f.holdTimer == nil {
		f.holdTimer = time.AfterFunc(d, f.endHold)
	} else {
		f.holdTimer.Reset(d)
	}
}

// endHold is the hold timer's callback: it re-arms for a hold that was extended
// meanwhile, or lets the workers start again.
func (f *function) endHold() {
	f.mu.Lock()
	if !f.closed {
		now := time.Now()
		if until := f.adapt.HeldUntil(); until.After(now) {
			f.holdTimer.Reset(until.Sub(now)) // still armed: the count carries over
			f.mu.Unlock()
			return
		}
		f.held = false
		f.idle = 0
		f.cond.Broadcast()
	}
	f.holdArmed = false
	f.mu.Unlock()
	f.s.workers.Done()
}

// stopHold cancels a pending hold timer at Close. Called with f.mu held and
// f.closed set; a callback already running sees closed and ends.
func (f *function) stopHold() {
	if f.holdArmed && f.holdTimer.Stop() {
		f.holdArmed = false
		f.s.workers.Done()
	}
}

// rateBurst is the token bucket's size for a rate: a tenth of a second's starts, at
// least one, so a limit of 500/s starts at most 50 at once and stays within 1% of 500
// over 10 s.
func rateBurst(r float64) int {
	return max(1, int(r/10))
}

// attempt runs one attempt, inline when in is set, turning a panic or an outcome of
// no known kind into a retriable outcome.
func (f *function) attempt(ctx context.Context, w *Workload, in InlineExecutor) (o Outcome) {
	defer func() {
		if v := recover(); v != nil {
			f.s.repeats.Log(f.s.logger, slog.LevelError, "panic "+f.cfg.Name, "scheduler: executor panicked; the attempt counts as retriable",
				"function", f.cfg.Name, "workload", w.ID, "panic", v, "stack", string(debug.Stack()))
			o = Retriable(ReasonPanic, fmt.Sprintf("executor panicked: %v", v))
		}
	}()
	if in != nil {
		o = in.ExecuteInline(ctx, w)
	} else {
		o = f.cfg.Executor.Execute(ctx, w, f.cfg.Timeout)
	}
	return f.checkOutcome(w, o)
}

// checkOutcome turns an outcome of no known kind into a retriable outcome.
func (f *function) checkOutcome(w *Workload, o Outcome) Outcome {
	switch o.Kind {
	case OutcomeSuccess, OutcomeRetriable, OutcomeFatal:
		return o
	}
	f.s.repeats.Log(f.s.logger, slog.LevelError, "kind "+f.cfg.Name, "scheduler: executor returned an outcome of invalid kind; the attempt counts as retriable",
		"function", f.cfg.Name, "workload", w.ID, "kind", o.Kind, "reason", o.Reason, "err", o.Err)
	return Outcome{
		Kind:       OutcomeRetriable,
		Reason:     ReasonError,
		Err:        fmt.Sprintf("executor returned an invalid outcome kind %s (reason %q, err %q)", o.Kind, o.Reason, o.Err),
		RetryAfter: o.RetryAfter,
	}
}
