package tailer

import (
	"context"
	"time"
)

// keyLine is the line of one busy key in a partition (OrderKey) or of the partition
// itself (OrderPartition): one record of it is active — running, retrying in place or
// having its failure made durable — and the records read after it wait, in offset
// order, to run one at a time.
type keyLine struct {
	waiting []*entry
}

// orderKey returns the key that orders e's record, and false when its order need not
// be kept: in OrderUnordered, and for a record with a null key in OrderKey.
func (t *Tailer) orderKey(e *entry) (string, bool) {
	switch t.cfg.Ordering {
	case OrderPartition:
		return "", true
	case OrderKey:
		if e.rec == nil || e.rec.Key == nil {
			return "", false
		}
		return string(e.rec.Key), true
	default:
		return "", false
	}
}

// admitLocked decides whether e, a workload about to run, may run now. An entry whose
// key is busy joins the key's line (it is parked: a revocation does not wait for it)
// and admitLocked returns false; otherwise e makes its key busy, if it has one. p.mu
// must be held.
func (t *Tailer) admitLocked(p *partition, e *entry) bool {
	k, ok := t.orderKey(e)
	if !ok {
		return true
	}
	e.key, e.keyed = k, true
	if line, busy := p.keys[k]; busy {
		line.waiting = append(line.waiting, e)
		p.parked++
		p.blocked++
		t.stats.blocked.Add(1)
		return false
	}
	if p.keys == nil {
		p.keys = make(map[string]*keyLine)
	}
	p.keys[k] = &keyLine{}
	return true
}

// releaseKeyLocked is called when e, the active record of its key, is done: the next
// record of the key's line becomes active and goes to the ready queue, or the key is no
// longer busy. p.mu must be held.
func (t *Tailer) releaseKeyLocked(p *partition, e *entry) {
	if !e.keyed {
		return
	}
	line := p.keys[e.key]
	if line == nil {
		return
	}
	if len(line.waiting) == 0 {
		delete(p.keys, e.key)
		return
	}
	next := line.waiting[0]
	line.waiting[0] = nil
	line.waiting = line.waiting[1:]
	p.blocked--
	t.stats.blocked.Add(-1)
	// next stays parked until the ready loop pushes it, so that a revocation in the
	// meantime does not wait for it.
	t.ready.add(next)
}

// readyLoop pushes the records whose key became free. Results are delivered on the
// scheduler stream's goroutine, which must not block on a push (its credit comes back
// through that goroutine), so releasing a key hands the next record to this loop. The
// records of a partition no longer ours, or being revoked, are dropped: they are below
// its checkpoint and its next owner runs them.
func (t *Tailer) readyLoop(ctx context.Context) {
	t.dueLoop(ctx, t.ready.wake, func(_ time.Time, run []*entry) ([]*entry, time.Duration) {
		due := t.ready.take(run)
		run = due[:0]
		for _, e := range due {
			if t.unpark(e) {
				run = append(run, e)
			}
		}
		clear(due[len(run):])
		return run, time.Hour
	})
}

// unpark takes e, a parked entry that is due to run, out of its partition's parked
// count, unless the partition is no longer ours or is being revoked: then e stays
// parked and is dropped (false).
func (t *Tailer) unpark(e *entry) bool {
	p := e.part
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fenced || p.revoking.Load() {
		return false
	}
	p.parked--
	return true
}
