package tailer

import (
	"container/heap"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/kasync/kasync/scheduler"
)

// holdQueue orders partitions whose head record is held (ActionWait) by the time it
// asked for. A partition is in it at most once: only its head is ever waited on, and
// the records behind the head wait in the partition's held list.
type holdQueue struct {
	mu   sync.Mutex
	h    holdHeap
	wake chan struct{}
}

type holdItem struct {
	p     *partition
	until time.Time
}

func (q *holdQueue) add(p *partition, until time.Time) {
	q.mu.Lock()
	heap.Push(&q.h, holdItem{p: p, until: until})
	first := q.h[0].p == p
	q.mu.Unlock()
	if first {
		notify(q.wake)
	}
}

// due pops the partitions whose time has come and returns how long until the next one.
func (q *holdQueue) due(now time.Time, out []*partition) ([]*partition, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.h) > 0 && !q.h[0].until.After(now) {
		out = append(out, heap.Pop(&q.h).(holdItem).p)
	}
	if len(q.h) == 0 {
		return out, time.Hour
	}
	return out, q.h[0].until.Sub(now)
}

type holdHeap []holdItem

func (h holdHeap) Len() int           { return len(h) }
func (h holdHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h holdHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *holdHeap) Push(x any)        { *h = append(*h, x.(holdItem)) }
func (h *holdHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = holdItem{}
	*h = old[:len(old)-1]
	return it
}

// holdLoop wakes when a held partition's head is due and asks the Reader again about
// its held records, in order, until one must wait again.
func (t *Tailer) holdLoop(ctx context.Context) {
	var due []*partition
	t.dueLoop(ctx, t.holds.wake, func(now time.Time, run []*entry) ([]*entry, time.Duration) {
		var wait time.Duration
		due, wait = t.holds.due(now, due[:0])
		for _, p := range due {
			run = t.releaseHeld(p, run)
		}
		clear(due)
		return run, wait
	})
}

// dueLoop is the loop of in-place retries and held records: whenever woken (by wake, or
// by one timer set to the next due time — no polling, no busy waiting), take collects
// the entries due at now and says how long until the next one; they are pushed to the
// scheduler. It returns when ctx is done, or when a push fails (only on shutdown; the
// records stay below the checkpoint).
func (t *Tailer) dueLoop(ctx context.Context, wake <-chan struct{}, take func(now time.Time, run []*entry) ([]*entry, time.Duration)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var (
		run   []*entry
		batch []scheduler.Pushed
	)
	for {
		var wait time.Duration
		run, wait = take(time.Now(), run[:0])
		batch = t.register(run, batch[:0])
		clear(run)
		if len(batch) > 0 {
			if err := t.stream.Push(ctx, batch); err != nil {
				return
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-timer.C:
		}
	}
}

// releaseHeld asks the Reader again about p's held records, in offset order, carrying
// out each step until one must wait again; when none is left held, p's fetching
// resumes (unless it is paused for another reason). The held records of a partition
// that is no longer ours, or is being revoked, are dropped: they are below its
// checkpoint, and its next owner reads them again.
func (t *Tailer) releaseHeld(p *partition, run []*entry) []*entry {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fenced || p.revoking.Load() {
		p.parked -= len(p.held)
		t.stats.held.Add(-int64(len(p.held)))
		clear(p.held)
		p.held = nil
		return run
	}
	for len(p.held) > 0 {
		rec := p.held[0]
		step := t.cfg.Reader.Next(rec, now)
		if step.Action != ActionRun && step.Action != ActionProduce {
			until := step.Until
			if step.Action != ActionWait || until.IsZero() {
				// A Reader's bug; keep the record.
				t.errLog.Log(t.log, slog.LevelError, "reader step", "reader returned an unusable step for a record; holding it and retrying in 1s",
					"partition", rec.Partition, "offset", rec.Offset, "action", step.Action)
				until = now.Add(time.Second)
			}
			t.holds.add(p, until)
			return run
		}
		p.held[0] = nil
		p.held = p.held[1:]
		p.parked--
		t.stats.held.Add(-1)
		run = t.stepLocked(p, rec, step, run)
	}
	p.held = nil
	t.setPauseLocked(p, pauseHold, false)
	return run
}
