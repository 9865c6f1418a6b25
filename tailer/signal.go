package tailer

import "sync"

// signal wakes every goroutine waiting on it. A waiter takes C before it checks its
// condition, so a Broadcast between the check and the wait is not missed.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) Broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// notify sends a wake-up on a channel of capacity 1 without blocking.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
