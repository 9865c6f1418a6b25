package tailer

import (
	"container/heap"
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/backoff"
	"github.com/kasync/kasync/scheduler"
)

// deliverChunk is how many results deliver takes from the token table under one hold
// of t.mu; their entries fit in a buffer on deliver's stack.
const deliverChunk = 64

// deliver receives results from the scheduler stream. It never blocks on I/O: successes
// complete at once, failures go to the outbox or the retry queue. It allocates
// nothing: successes are completed together (see completer).
func (t *Tailer) deliver(results []scheduler.Result) {
	var buf [deliverChunk]*entry
	c := completer{t: t}
	// Successes go to the storm guard in runs of one function, one call per run; a
	// run ends before any other outcome, so the guard sees outcomes in order, and at a
	// success of a function whose guard is on: that is the probe, which must turn the
	// guard off before complete looks at it to resume the partition.
	var okFn string
	okRun := 0
	flush := func() {
		t.observeSuccesses(okFn, okRun)
		okRun = 0
	}
	for len(results) > 0 {
		chunk := results[:min(len(results), deliverChunk)]
		results = results[len(chunk):]
		t.mu.Lock()
		for i, r := range chunk {
			buf[i] = t.tokens.take(r.Token)
		}
		t.mu.Unlock()
		for i, e := range buf[:len(chunk)] {
			buf[i] = nil
			switch {
			case e == nil: // a duplicate result; the first one counted
			case chunk[i].Outcome.Kind == scheduler.OutcomeSuccess:
				if fn := e.w.Function; fn != okFn {
					flush()
					okFn = fn
				}
				okRun++
				if !t.stormOver(okFn) {
					flush()
				}
				if t.cfg.Status != nil {
					t.cfg.Status.Succeeded(&e.w)
				}
				c.succeeded++
				c.complete(e)
			default:
				flush()
				c.unlock() // handle takes partition locks of its own
				t.handle(e, chunk[i].Outcome)
			}
		}
	}
	flush()
	c.finish()
}

// handle decides what becomes of an attempt's outcome. A success completes the record;
// a failure is handed to the Reader, which says where it goes: a rung or the dead
// letter (through the outbox: done once durable), or, while the function's storm guard
// is on, an in-place retry.
func (t *Tailer) handle(e *entry, o scheduler.Outcome) {
	storm := false
	switch o.Kind {
	case scheduler.OutcomeSuccess:
		t.observe(e.w.Function, false)
		if t.cfg.Status != nil {
			t.cfg.Status.Succeeded(&e.w)
		}
		c := completer{t: t, succeeded: 1}
		c.complete(e)
		c.finish()
		return
	case scheduler.OutcomeFatal:
		// The record's fault, not the function's: the storm guard does not count it.
	default:
		storm = t.observe(e.w.Function, true)
	}
	now := time.Now()
	x := e.detour()
	if x.firstFailure.IsZero() {
		x.firstFailure = now
	}
	x.last = o
	step := t.cfg.Reader.Failed(&Failure{Record: e.rec, Workload: &e.w, Outcome: o, FirstFailure: x.firstFailure, Storm: storm})
	if step.Action == ActionProduce && step.Record != nil {
		x.out, x.to, x.reason = step.Record, step.To, step.Reason
		t.outbox.add(e)
		return
	}
	if step.Action != ActionRetry {
		// A Reader's bug: keep the record (in place) rather than lose it.
		t.errLog.Log(t.log, slog.LevelError, "reader failed step", "reader returned an unusable step for a failed attempt; retrying it in place",
			"function", e.w.Function, "workload", e.w.ID, "action", step.Action)
	}
	ordered := step.Action == ActionRetry && !step.Until.IsZero()
	x.inPlace++
	if ordered {
		// The next attempt, at its time; only the record's key waits for it.
		if t.cfg.Status != nil {
			t.cfg.Status.Failed(&e.w, o, ToRung, nil, step.Until)
		}
		if step.Workload.Attempt >= 1 {
			e.w = step.Workload
		}
		x.due = step.Until
	} else {
		x.due = now.Add(t.cfg.stormRetry(x.inPlace, rand.Float64()))
	}
	p := e.part
	p.mu.Lock()
	p.parked++
	if !p.fenced && !ordered {
		t.setPauseLocked(p, pauseStorm, true)
	}
	idle := p.revoking.Load() && p.win != nil && p.win.InFlight() == p.parked
	p.mu.Unlock()
	if idle {
		t.idle.Broadcast()
	}
	t.retries.add(e)
}

// observe reports an outcome to the storm guard, if there is one, and returns whether
// the function's guard is on.
func (t *Tailer) observe(function string, failed bool) bool {
	if t.cfg.Guard == nil {
		return false
	}
	return t.cfg.Guard.Observe(function, failed)
}

// observeSuccesses reports n successes of function to the storm guard, if there is one.
func (t *Tailer) observeSuccesses(function string, n int) {
	if t.cfg.Guard != nil && n > 0 {
		t.cfg.Guard.ObserveSuccesses(function, n)
	}
}

// stormOver reports whether function's storm guard is off.
func (t *Tailer) stormOver(function string) bool {
	return t.cfg.Guard == nil || !t.cfg.Guard.Active(function)
}

// complete marks e's record done in its partition's window, unless the partition was
// fenced in the meantime: then the result is dropped and changes nothing.
func (t *Tailer) complete(e *entry) {
	c := completer{t: t}
	c.complete(e)
	c.finish()
}

// completer completes entries: it holds a partition's lock across consecutive entries
// of that partition, and settles the tailer's counters and wake-ups once, in finish,
// rather than once per record. Results of a push come back mostly grouped by
// partition, as they were read. A completer is used by one goroutine and must be
// finished.
type completer struct {
	t *Tailer
	p *partition // locked by the completer; nil when none is

	pDone     bool  // an entry of p was completed while it is locked
	succeeded int64 // successes to count (set by the caller)
	done      int64 // records completed (left the window)
	fenced    int64 // results dropped for fenced partitions
	idle      bool  // a revoking partition ran out of work in flight
}

// complete is Tailer.complete within the completer's batch.
func (c *completer) complete(e *entry) {
	t := c.t
	p := e.part
	if p != c.p {
		c.unlock()
		p.mu.Lock()
		c.p = p
	}
	if p.fenced || p.win == nil || !p.win.Done(e.offset) {
		if p.fenced {
			c.fenced++
		} else {
			t.releaseKeyLocked(p, e) // never leave a key busy for ever
		}
		return
	}
	t.releaseKeyLocked(p, e)
	p.dirty = true
	c.pDone = true
	c.done++
	if p.pause&pauseFull != 0 && p.win.InFlight() < t.cfg.PartitionMaxInFlight {
		t.setPauseLocked(p, pauseFull, false)
	}
	if p.pause&pauseStorm != 0 && t.stormOver(e.function(t.cfg.Function)) {
		t.setPauseLocked(p, pauseStorm, false)
	}
}

// unlock releases the partition the completer holds, if any.
func (c *completer) unlock() {
	p := c.p
	if p == nil {
		return
	}
	if c.pDone && p.revoking.Load() && p.win.InFlight() == p.parked {
		c.idle = true
	}
	p.mu.Unlock()
	c.p, c.pDone = nil, false
}

// finish unlocks and applies the counts: in-flight room, idle revocations, commits.
func (c *completer) finish() {
	c.unlock()
	t := c.t
	if c.succeeded > 0 {
		t.stats.succeeded.Add(c.succeeded)
	}
	if c.fenced > 0 {
		t.stats.fenced.Add(c.fenced)
	}
	if c.done == 0 {
		return
	}
	if t.inFlight.Add(-c.done) < int64(t.cfg.MaxInFlight) {
		notify(t.room)
	}
	if c.idle {
		t.idle.Broadcast()
	}
	if t.sinceCommit.Add(c.done) >= int64(t.cfg.CommitCount) {
		notify(t.commitNow)
		// A periodic write may be waiting for the store's sync slot with its snapshot
		// taken; the poll loop stops reading once CommitCount completions wait, so
		// that write must not wait out the slot.
		if t.urgent != nil {
			t.urgent.Hurry()
		}
	}
}

// function is the function e's record runs, or def when it runs none (a record the
// Reader produced at once, like a rung record moved on to the next rung).
func (e *entry) function(def string) string {
	if e.w.Function != "" {
		return e.w.Function
	}
	return def
}

// fenced reports whether e's partition is no longer ours. A revoking partition is
// still ours: its durable outcomes are written, so that its revocation need not wait
// out RevokeTimeout and its next owner need not run the record again.
func (t *Tailer) fenced(e *entry) bool {
	e.part.mu.Lock()
	defer e.part.mu.Unlock()
	return e.part.fenced
}

// retryQueue holds entries waiting for an in-place retry, ordered by due time.
type retryQueue struct {
	mu   sync.Mutex
	h    entryHeap
	wake chan struct{}
}

func (q *retryQueue) add(e *entry) {
	q.mu.Lock()
	heap.Push(&q.h, e)
	first := q.h[0] == e
	q.mu.Unlock()
	if first {
		notify(q.wake)
	}
}

// due pops the entries due at now and returns how long until the next one.
func (q *retryQueue) due(now time.Time, out []*entry) ([]*entry, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.h) > 0 && !q.h[0].x.due.After(now) {
		out = append(out, heap.Pop(&q.h).(*entry))
	}
	if len(q.h) == 0 {
		return out, time.Hour
	}
	return out, q.h[0].x.due.Sub(now)
}

type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].x.due.Before(h[j].x.due) }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)        { *h = append(*h, x.(*entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// retryLoop pushes entries waiting for an in-place retry again when they are due, with
// the same attempt number (see ActionRetry). Those of a partition no longer ours, or
// being revoked, are dropped: the partition's next owner runs them.
func (t *Tailer) retryLoop(ctx context.Context) {
	t.dueLoop(ctx, t.retries.wake, func(now time.Time, run []*entry) ([]*entry, time.Duration) {
		due, wait := t.retries.due(now, run)
		run = due[:0]
		for _, e := range due {
			if t.unpark(e) {
				run = append(run, e)
				t.stats.inPlace.Add(1)
			}
		}
		clear(due[len(run):])
		return run, wait
	})
}

// entryQueue is a queue of entries that one loop takes all at once: the outbox (records
// being made durable: rung and dead-letter records) and the ready queue (records whose
// key became free).
type entryQueue struct {
	mu   sync.Mutex
	q    []*entry
	wake chan struct{}
}

func (q *entryQueue) add(e *entry) {
	q.mu.Lock()
	q.q = append(q.q, e)
	q.mu.Unlock()
	notify(q.wake)
}

func (q *entryQueue) take(out []*entry) []*entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	out = append(out, q.q...)
	clear(q.q)
	q.q = q.q[:0]
	return out
}

// outboxLoop produces the records of queued entries; an entry completes only once the
// broker has acknowledged its record. Failed produces are retried with backoff, never
// dropped, so the partition's checkpoint waits for them.
func (t *Tailer) outboxLoop(ctx context.Context) {
	var pending []*entry
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		pending = t.outbox.take(pending)
		kept := pending[:0]
		for _, e := range pending {
			if !t.fenced(e) {
				kept = append(kept, e)
			}
		}
		clear(pending[len(kept):])
		pending = kept
		if len(pending) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-t.outbox.wake:
				continue
			}
		}
		out := make([]*kgo.Record, len(pending))
		for i, e := range pending {
			out[i] = e.x.out
		}
		errs := t.cfg.Producer.Produce(ctx, out)
		failed := pending[:0]
		var firstErr error
		for i, e := range pending {
			if i < len(errs) && errs[i] != nil {
				failed = append(failed, e)
				firstErr = errs[i]
				continue
			}
			t.produced(e)
			if t.cfg.Status != nil {
				t.statusProduced(e)
			}
			t.complete(e)
		}
		clear(pending[len(failed):])
		pending = failed
		if len(pending) == 0 {
			bo.Reset()
			continue
		}
		if ctx.Err() != nil {
			return // stopping: the records stay below the checkpoint
		}
		wait := bo.Next()
		t.errLog.Log(t.log, slog.LevelError, "produce", "producing to a delay rung or the dead letter failed; will retry (the checkpoint waits for it)",
			"records", len(pending), "err", firstErr, "retry_in", wait)
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

// produced counts and logs a durable record. A dead letter is a line at debug; at
// warn, one line per function and reason every 30s sums them up (the metric
// kasync_dead_letter_total counts each), so a hostile or failing stream cannot flood
// the log.
func (t *Tailer) produced(e *entry) {
	switch e.x.to {
	case ToRung:
		t.stats.delayed.Add(1)
	case ToNextRung:
		t.stats.hopped.Add(1)
	case ToDeadLetter:
		t.stats.deadLettered.Add(1)
		fn := e.function(t.cfg.Function)
		args := []any{"function", fn, "reason", e.x.reason, "workload", e.w.ID, "partition", e.part.key.Partition,
			"offset", e.offset, "attempt", e.w.Attempt, "err", e.x.last.Err}
		t.log.Debug("record dead-lettered", args...)
		t.errLog.Log(t.log, slog.LevelWarn, "dead letter "+fn+" "+e.x.reason, "records dead-lettered", args...)
	}
}
