package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrStreamClosed is returned by Push on a stream that is closed, including a Push
// that was blocked waiting for credit when Close was called.
var ErrStreamClosed = errors.New("scheduler: stream closed")

// DefaultWindow is the credit window of a Local stream when NewLocal is given 0.
const DefaultWindow = 1024

// Local is the in-process adapter between a source and a Scheduler: it implements
// tailer.Scheduler without a network hop.
type Local struct {
	s      *Scheduler
	window int
}

// NewLocal returns an adapter whose streams each allow at most window workloads
// without a delivered result (their credit). window <= 0 means DefaultWindow.
func NewLocal(s *Scheduler, window int) *Local {
	if s == nil {
		panic("scheduler: NewLocal called with a nil *Scheduler")
	}
	if window <= 0 {
		window = DefaultWindow
	}
	return &Local{s: s, window: window}
}

// Open starts a stream named name (the source's name, for logs). ctx bounds the
// opening only; the stream lives until Close. deliver is called with batches of
// results from one goroutine the stream owns, never concurrently with itself; it may
// keep the slice. deliver must not call the stream's Close (Close waits for it).
func (l *Local) Open(ctx context.Context, name string, deliver func([]Result)) (Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scheduler: open stream %q: %w", name, err)
	}
	if name == "" {
		return nil, errors.New("scheduler: open stream: name is empty; name the stream after its source")
	}
	if deliver == nil {
		return nil, fmt.Errorf("scheduler: open stream %q: deliver is nil; pass the func that receives results", name)
	}
	if l.s.closing.Load() {
		return nil, fmt.Errorf("scheduler: open stream %q: %w", name, ErrClosed)
	}
	st := &localStream{
		s:       l.s,
		name:    name,
		window:  l.window,
		deliver: deliver,
		wake:    make(chan struct{}, 1),
		room:    make(chan struct{}),
		closedC: make(chan struct{}),
		exited:  make(chan struct{}),
	}
	go st.run()
	return st, nil
}

// localStream is one Local stream. Credit is counted in inflight: a workload holds
// one unit from Push until its result has been handed to deliver, so the workloads
// queued or running in the scheduler plus the results waiting for delivery never
// exceed window.
//
// A pushed workload's ticket carries its token to its done and its outcome back: done
// pushes the answered ticket onto answered, a lock-free stack, so the scheduler's
// workers never wait for each other or for the delivery goroutine to answer; the
// delivery goroutine takes the whole stack at once. Tickets are reused, so Push and
// answers allocate nothing per workload.
type localStream struct {
	s       *Scheduler
	name    string
	window  int
	deliver func([]Result)

	answered atomic.Pointer[ticket] // answered tickets, newest first, linked by next

	mu       sync.Mutex
	closed   bool
	inflight int     // pushed, result not yet delivered; <= window
	free     *ticket // tickets not attached to a workload, linked by next
	tickets  int     // tickets ever made, <= window
	waiters  bool    // a Push waits on room
	room     chan struct{}

	wake    chan struct{} // cap 1: answered went from empty to non-empty
	closedC chan struct{} // closed by Close
	exited  chan struct{} // closed when the delivery goroutine returns
}

// ticket carries a pushed workload's token to its done and its outcome back. A stream
// never has more tickets than its window and reuses them. A ticket is in exactly one
// place: the free list, a workload in the scheduler, or the answered stack.
type ticket struct {
	st    *localStream
	token uint64
	o     Outcome
	next  *ticket       // the next ticket in the free list or the answered stack
	done  func(Outcome) // t.answer, bound once
}

// answer is a ticket's done: it records the outcome and pushes the ticket onto the
// stream's answered stack, waking the delivery goroutine when the stack was empty.
// Results answered after Close stay on the stack and are never delivered.
func (t *ticket) answer(o Outcome) {
	st := t.st
	t.o = o
	for {
		head := st.answered.Load()
		t.next = head
		if st.answered.CompareAndSwap(head, t) {
			if head == nil {
				select {
				case st.wake <- struct{}{}:
				default:
				}
			}
			return
		}
	}
}

// Push enqueues each workload once the stream has credit for it. On an error (ctx
// done, stream closed) a prefix of batch may already have been pushed; their results
// are still delivered while the stream stays open.
func (st *localStream) Push(ctx context.Context, batch []Pushed) error {
	for len(batch) > 0 {
		st.mu.Lock()
		if st.closed {
			st.mu.Unlock()
			return ErrStreamClosed
		}
		if err := ctx.Err(); err != nil {
			st.mu.Unlock()
			return fmt.Errorf("scheduler: push to stream %q: %w", st.name, err)
		}
		n := min(st.window-st.inflight, len(batch))
		if n == 0 {
			st.waiters = true
			room := st.room
			st.mu.Unlock()
			select {
			case <-room:
				continue
			case <-st.closedC:
				return ErrStreamClosed
			case <-ctx.Done():
				return fmt.Errorf("scheduler: push to stream %q: %w", st.name, ctx.Err())
			}
		}
		st.inflight += n
		next := st.takeTickets(n)
		st.mu.Unlock()

		// Enqueueing takes the function's lock; it is done without st.mu, so that
		// Push never holds both (answers are lock-free and need neither). A ticket's next is
		// read before its workload is handed over: from then on its done may run, and
		// reuse next, at any time.
		st.s.EnqueueBatch(n, func(i int) (*Workload, func(Outcome)) {
			t := next
			next, t.next = t.next, nil
			t.token = batch[i].Token
			return batch[i].Workload, t.done
		})
		batch = batch[n:]
	}
	return nil
}

// takeTickets returns a chain of n tickets linked by next, taken from the free list
// and made new up to the window. Called with st.mu held.
func (st *localStream) takeTickets(n int) *ticket {
	var first *ticket
	for range n {
		t := st.free
		if t != nil {
			st.free = t.next
		} else {
			t = &ticket{st: st}
			t.done = t.answer
			st.tickets++
		}
		t.next = first
		first = t
	}
	return first
}

// run is the delivery goroutine: it hands results to deliver in batches and returns
// their credit, until Close.
func (st *localStream) run() {
	defer close(st.exited)
	for {
		select {
		case <-st.wake:
		case <-st.closedC:
			return
		}
		head := st.answered.Swap(nil)
		if head == nil {
			continue
		}
		n := 0
		for t := head; t != nil; t = t.next {
			n++
		}
		// deliver may keep batch, so each batch is a fresh array.
		batch := make([]Result, 0, n)
		last := head
		for t := head; t != nil; t = t.next {
			batch = append(batch, Result{Token: t.token, Outcome: t.o})
			t.o = Outcome{}
			last = t
		}
		st.mu.Lock()
		if st.closed {
			st.mu.Unlock()
			return
		}
		last.next, st.free = st.free, head // the results are copied: the tickets are free
		st.mu.Unlock()

		st.deliver(batch)

		st.mu.Lock()
		st.inflight -= n
		if st.waiters {
			st.waiters = false
			close(st.room)
			st.room = make(chan struct{})
		}
		st.mu.Unlock()
	}
}

// Close ends the stream: blocked and later Pushes return ErrStreamClosed, results not
// yet delivered are dropped, and deliver is not called after Close returns.
func (st *localStream) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		<-st.exited
		return nil
	}
	st.closed = true
	st.mu.Unlock()
	close(st.closedC)
	<-st.exited
	return nil
}
