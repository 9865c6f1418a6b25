package tailer

import (
	"sync"
	"time"
)

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

// rateLimitedLog lets each distinct message through at most once per interval, so a
// persistent error is logged, not repeated on every poll or record.
type rateLimitedLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const logRepeatInterval = 30 * time.Second

func (r *rateLimitedLog) allow(msg string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = make(map[string]time.Time)
	}
	if at, ok := r.last[msg]; ok && now.Sub(at) < logRepeatInterval {
		return false
	}
	if len(r.last) > 1000 { // bounded: forget everything rather than grow
		clear(r.last)
	}
	r.last[msg] = now
	return true
}
