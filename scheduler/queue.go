package scheduler

import (
	"cmp"
	"slices"
)

// entry is one admitted workload waiting for a worker, with the callback that
// receives its outcome.
type entry struct {
	w    *Workload
	done func(Outcome)
	seq  uint64 // admission order within its queue
}

// minQueueCap is the smallest ring a queue keeps once it has grown; below it
// shrinking saves too little to be worth a copy. It is large enough (32 KiB) that the
// bursts a source pushes (a poll's batch, hundreds of workloads) fill and drain the
// ring without resizing it every time.
const minQueueCap = 1024

// agingEvery: every agingEvery-th pop of a queue takes its oldest entry, whatever its
// priority. A flood of higher priorities slows a lower one to at least 1/agingEvery of
// the dispatches while it holds the oldest entry; it never starves it.
const agingEvery = 10

// queue is the pure order of one function's waiting workloads: no locks, no clock, no
// goroutines. Higher Workload.Priority first, FIFO within a priority (one ring per
// priority, as ATF's per-priority queues), and every agingEvery-th pop the oldest entry
// of any priority.
type queue struct {
	levels []level // by priority, highest first; empty ones are kept while few
	n      int
	seq    uint64 // the next entry's admission number
	pops   uint64
}

// level is the FIFO of one priority.
type level struct {
	prio int32
	r    ring
}

// maxEmptyLevels bounds the empty levels a queue keeps for reuse, so that workloads of
// ever new priorities cannot grow it without bound.
const maxEmptyLevels = 8

// Len is the number of waiting entries.
func (q *queue) Len() int { return q.n }

// Push adds e behind every waiting entry of its priority.
func (q *queue) Push(e entry) {
	e.seq = q.seq
	q.seq++
	prio := e.w.Priority
	i, found := slices.BinarySearchFunc(q.levels, prio, func(l level, p int32) int { return cmp.Compare(p, l.prio) })
	if !found {
		q.levels = slices.Insert(q.levels, i, level{prio: prio})
	}
	q.levels[i].r.Push(e)
	q.n++
}

// Pop removes and returns the next entry: the oldest of the highest priority, or on
// every agingEvery-th pop the oldest of all. ok is false when the queue is empty.
func (q *queue) Pop() (e entry, ok bool) {
	if q.n == 0 {
		return entry{}, false
	}
	q.pops++
	pick := -1
	for i := range q.levels {
		if q.levels[i].r.Len() == 0 {
			continue
		}
		if pick < 0 {
			pick = i
			if q.pops%agingEvery != 0 {
				break
			}
		} else if q.levels[i].r.Front().seq < q.levels[pick].r.Front().seq {
			pick = i
		}
	}
	e, _ = q.levels[pick].r.Pop()
	q.n--
	if q.levels[pick].r.Len() == 0 && len(q.levels)-q.nonEmpty() > maxEmptyLevels {
		q.levels = slices.Delete(q.levels, pick, pick+1)
	}
	return e, true
}

func (q *queue) nonEmpty() int {
	n := 0
	for i := range q.levels {
		if q.levels[i].r.Len() > 0 {
			n++
		}
	}
	return n
}

// Drain removes every entry and returns them, oldest first.
func (q *queue) Drain() []entry {
	out := make([]entry, 0, q.n)
	for i := range q.levels {
		out = append(out, q.levels[i].r.Drain()...)
	}
	slices.SortFunc(out, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) })
	q.levels, q.n = nil, 0
	return out
}

// ring is a FIFO of entries: a ring buffer (its size a power of two) that doubles
// when full and halves when a quarter full, so a burst costs memory only while it
// lasts, and Pop clears the slot it frees so the ring never keeps a finished workload
// alive.
type ring struct {
	buf  []entry
	head int // index of the oldest entry
	n    int // number of entries
}

// Len is the number of waiting entries.
func (q *ring) Len() int { return q.n }

// Front returns the oldest entry without removing it; the ring must not be empty.
func (q *ring) Front() entry { return q.buf[q.head] }

// Push appends e behind every waiting entry.
func (q *ring) Push(e entry) {
	if q.n == len(q.buf) {
		q.resize(max(2*len(q.buf), 16))
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = e
	q.n++
}

// Pop removes and returns the oldest entry; ok is false when the queue is empty.
func (q *ring) Pop() (e entry, ok bool) {
	if q.n == 0 {
		return entry{}, false
	}
	e = q.buf[q.head]
	q.buf[q.head] = entry{}
	q.head++
	if q.head == len(q.buf) {
		q.head = 0
	}
	q.n--
	if len(q.buf) > minQueueCap && q.n <= len(q.buf)/4 {
		q.resize(len(q.buf) / 2)
	}
	return e, true
}

// Drain removes every entry, oldest first, and returns them.
func (q *ring) Drain() []entry {
	out := make([]entry, 0, q.n)
	for {
		e, ok := q.Pop()
		if !ok {
			return out
		}
		out = append(out, e)
	}
}

func (q *ring) resize(size int) {
	buf := make([]entry, size)
	for i := 0; i < q.n; i++ {
		buf[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
	}
	q.buf, q.head = buf, 0
}
