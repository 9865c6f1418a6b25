package scheduler

// entry is one admitted workload waiting for a worker, with the callback that
// receives its outcome.
type entry struct {
	w    *Workload
	done func(Outcome)
}

// minQueueCap is the smallest ring a queue keeps once it has grown; below it
// shrinking saves too little to be worth a copy.
const minQueueCap = 64

// queue is the pure order of one function's waiting workloads: no locks, no
// clock, no goroutines. Today it is FIFO; priority ordering replaces the ring
// with a heap behind the same three methods.
//
// It is a ring buffer (its size a power of two) that doubles when full and halves when a quarter full, so
// a burst costs memory only while it lasts, and Pop clears the slot it frees so
// the queue never keeps a finished workload alive.
type queue struct {
	buf  []entry
	head int // index of the oldest entry
	n    int // number of entries
}

// Len is the number of waiting entries.
func (q *queue) Len() int { return q.n }

// Push appends e behind every waiting entry.
func (q *queue) Push(e entry) {
	if q.n == len(q.buf) {
		q.resize(max(2*len(q.buf), 16))
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = e
	q.n++
}

// Pop removes and returns the oldest entry; ok is false when the queue is empty.
func (q *queue) Pop() (e entry, ok bool) {
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
func (q *queue) Drain() []entry {
	out := make([]entry, 0, q.n)
	for {
		e, ok := q.Pop()
		if !ok {
			return out
		}
		out = append(out, e)
	}
}

func (q *queue) resize(size int) {
	buf := make([]entry, size)
	for i := 0; i < q.n; i++ {
		buf[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
	}
	q.buf, q.head = buf, 0
}
