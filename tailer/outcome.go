package tailer

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kasync/kasync/internal/backoff"
	"github.com/kasync/kasync/scheduler"
)

// deliver receives results from the scheduler stream. It never blocks on I/O: successes
// complete at once, failures are queued for the retry and dead-letter loops.
func (t *Tailer) deliver(results []scheduler.Result) {
	entries := make([]*entry, len(results))
	t.mu.Lock()
	for i, r := range results {
		entries[i] = t.tokens[r.Token]
		delete(t.tokens, r.Token)
	}
	t.mu.Unlock()
	for i, e := range entries {
		if e != nil { // nil: a duplicate result; the first one counted
			t.handle(e, results[i].Outcome)
		}
	}
}

func (t *Tailer) handle(e *entry, o scheduler.Outcome) {
	switch {
	case o.Kind == scheduler.OutcomeSuccess:
		t.stats.succeeded.Add(1)
		t.complete(e)
	case o.Kind == scheduler.OutcomeRetriable && e.w.Attempt < t.cfg.MaxAttempts:
		e.last = o
		if e.firstFailure.IsZero() {
			e.firstFailure = time.Now()
		}
		delay := max(t.cfg.backoff(e.w.Attempt, rand.Float64()), o.RetryAfter)
		e.due = time.Now().Add(delay)
		e.part.mu.Lock()
		e.part.retrying++
		idle := e.part.revoking.Load() && e.part.win != nil && e.part.win.InFlight() == e.part.retrying
		e.part.mu.Unlock()
		if idle {
			t.idle.Broadcast()
		}
		t.retries.add(e)
	default:
		e.last = o
		if e.firstFailure.IsZero() {
			e.firstFailure = time.Now()
		}
		t.letters.add(e)
	}
}

// complete marks e's record done in its partition's window, unless the partition was
// fenced in the meantime: then the result is dropped and changes nothing.
func (t *Tailer) complete(e *entry) {
	p := e.part
	p.mu.Lock()
	if p.fenced || p.win == nil || !p.win.Done(e.offset) {
		fenced := p.fenced
		p.mu.Unlock()
		if fenced {
			t.stats.fenced.Add(1)
		}
		return
	}
	p.dirty = true
	inFlight := p.win.InFlight()
	resume := p.paused && inFlight < t.cfg.PartitionMaxInFlight
	if resume {
		p.paused = false
	}
	idle := p.revoking.Load() && inFlight == p.retrying
	p.mu.Unlock()

	if resume {
		t.cl.ResumeFetchPartitions(map[string][]int32{t.cfg.Topic: {p.key.Partition}})
	}
	if t.inFlight.Add(-1) < int64(t.cfg.MaxInFlight) {
		notify(t.room)
	}
	if idle {
		t.idle.Broadcast()
	}
	if t.sinceCommit.Add(1) >= int64(t.cfg.CommitCount) {
		notify(t.commitNow)
	}
}

// usable reports whether e's partition is still ours and accepting work. A retry of a
// fenced or revoking partition is dropped: its record stays below the checkpoint, so
// the partition's next owner runs it.
func (t *Tailer) usable(e *entry) bool {
	return !e.part.revoking.Load() && !t.fenced(e)
}

// fenced reports whether e's partition is no longer ours. A revoking partition is
// still ours: its dead letters are written, so that its revocation need not wait out
// RevokeTimeout and its next owner need not run the record again.
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
	for len(q.h) > 0 && !q.h[0].due.After(now) {
		out = append(out, heap.Pop(&q.h).(*entry))
	}
	if len(q.h) == 0 {
		return out, time.Hour
	}
	return out, q.h[0].due.Sub(now)
}

type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)        { *h = append(*h, x.(*entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// retryLoop pushes parked entries again when they are due, with the next attempt number.
func (t *Tailer) retryLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []*entry
	var batch []scheduler.Pushed
	for {
		var wait time.Duration
		due, wait = t.retries.due(time.Now(), due[:0])
		batch = batch[:0]
		for _, e := range due {
			e.part.mu.Lock()
			e.part.retrying--
			e.part.mu.Unlock()
			if !t.usable(e) {
				continue
			}
			e.w.Attempt++
			t.mu.Lock()
			t.nextToken++
			t.tokens[t.nextToken] = e
			batch = append(batch, scheduler.Pushed{Token: t.nextToken, Workload: &e.w})
			t.mu.Unlock()
			t.stats.retried.Add(1)
		}
		clear(due)
		if len(batch) > 0 {
			if err := t.stream.Push(ctx, batch); err != nil {
				return // only on shutdown; the records stay below the checkpoint
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.retries.wake:
		case <-timer.C:
		}
	}
}

// letterQueue holds entries on their way to the dead-letter topic.
type letterQueue struct {
	mu   sync.Mutex
	q    []*entry
	wake chan struct{}
}

func (q *letterQueue) add(e *entry) {
	q.mu.Lock()
	q.q = append(q.q, e)
	q.mu.Unlock()
	notify(q.wake)
}

func (q *letterQueue) take(out []*entry) []*entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	out = append(out, q.q...)
	clear(q.q)
	q.q = q.q[:0]
	return out
}

// letterLoop writes queued entries to the dead-letter topic; an entry completes only
// once the broker has acknowledged its letter. Failed sends are retried with backoff,
// never dropped.
func (t *Tailer) letterLoop(ctx context.Context) {
	var pending []*entry
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		pending = t.letters.take(pending)
		kept := pending[:0]
		for _, e := range pending {
			if !t.fenced(e) {
				kept = append(kept, e)
			}
		}
		pending = kept
		if len(pending) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-t.letters.wake:
				continue
			}
		}
		letters := make([]Letter, len(pending))
		for i, e := range pending {
			reason := string(e.last.Reason)
			if e.last.Kind == scheduler.OutcomeRetriable || reason == "" {
				reason = ReasonExhausted
			}
			letters[i] = Letter{Record: e.rec, Function: e.w.Function, Attempt: e.w.Attempt, Reason: reason,
				Err: e.last.Err, FirstFailure: e.firstFailure}
		}
		errs := t.cfg.DeadLetter.Send(ctx, letters)
		failed := pending[:0]
		var firstErr error
		for i, e := range pending {
			if i < len(errs) && errs[i] != nil {
				failed = append(failed, e)
				firstErr = errs[i]
				continue
			}
			t.stats.deadLettered.Add(1)
			t.log.Warn("record dead-lettered", "id", e.w.ID, "reason", letters[i].Reason,
				"attempt", e.w.Attempt, "err", e.last.Err)
			t.complete(e)
		}
		pending = failed
		if len(pending) == 0 {
			bo.Reset()
			continue
		}
		wait := bo.Next()
		t.log.Error("dead-letter produce failed; will retry (the checkpoint waits for it)",
			"records", len(pending), "err", firstErr, "retry_in", wait)
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}
