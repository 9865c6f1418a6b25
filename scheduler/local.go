package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
type localStream struct {
	s       *Scheduler
	name    string
	window  int
	deliver func([]Result)

	mu       sync.Mutex
	closed   bool
	inflight int       // pushed, result not yet delivered; <= window
	results  []Result  // answered, waiting for the delivery goroutine
	free     []*ticket // tickets not attached to a workload
	tickets  int       // tickets ever made, <= window
	waiters  bool      // a Push waits on room
	room     chan struct{}

	wake    chan struct{} // cap 1: results went from empty to non-empty, or closed
	closedC chan struct{} // closed by Close
	exited  chan struct{} // closed when the delivery goroutine returns
}

// ticket carries a pushed workload's token to its done. A stream never has more
// tickets than its window and reuses them, so Push allocates nothing per workload.
type ticket struct {
	st    *localStream
	token uint64
	done  func(Outcome) // t.answer, bound once
}

func (t *ticket) answer(o Outcome) {
	st := t.st
	st.mu.Lock()
	if st.closed {
		st.free = append(st.free, t)
		st.mu.Unlock()
		return
	}
	st.results = append(st.results, Result{Token: t.token, Outcome: o})
	first := len(st.results) == 1
	st.free = append(st.free, t)
	st.mu.Unlock()
	if first {
		select {
		case st.wake <- struct{}{}:
		default:
		}
	}
}

// Push enqueues each workload once the stream has credit for it. On an error (ctx
// done, stream closed) a prefix of batch may already have been pushed; their results
// are still delivered while the stream stays open.
func (st *localStream) Push(ctx context.Context, batch []Pushed) error {
	var tickets []*ticket
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
		tickets = st.takeTickets(tickets[:0], n)
		st.mu.Unlock()

		// Enqueue may answer on this goroutine (after the scheduler closed), and
		// answer takes st.mu, so it is called without the lock.
		for i, t := range tickets {
			t.token = batch[i].Token
			st.s.Enqueue(batch[i].Workload, t.done)
		}
		batch = batch[n:]
	}
	return nil
}

// takeTickets appends n free tickets to dst, making new ones up to the window. Called with st.mu held.
func (st *localStream) takeTickets(dst []*ticket, n int) []*ticket {
	for range n {
		if k := len(st.free); k > 0 {
			dst = append(dst, st.free[k-1])
			st.free[k-1] = nil
			st.free = st.free[:k-1]
			continue
		}
		t := &ticket{st: st}
		t.done = t.answer
		st.tickets++
		dst = append(dst, t)
	}
	return dst
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
		st.mu.Lock()
		if st.closed {
			st.mu.Unlock()
			return
		}
		batch := st.results
		// deliver may keep batch, so the next one gets a fresh array, sized like
		// this batch: the next is likely similar.
		st.results = make([]Result, 0, max(len(batch), 16))
		st.mu.Unlock()
		if len(batch) == 0 {
			continue
		}

		st.deliver(batch)

		st.mu.Lock()
		st.inflight -= len(batch)
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
	st.results = nil
	st.mu.Unlock()
	close(st.closedC)
	<-st.exited
	return nil
}
