package scheduler

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// initialSlotCost is a tenant's expected slot time before one was measured.
const initialSlotCost = float64(time.Millisecond)

// tenant is the state of one tenant: its settings, its rate limiter and its functions.
type tenant struct {
	idx     int // in Scheduler.tenants and the arbiter's core
	cfg     Tenant
	limiter *rate.Limiter // nil: no rate limit
	fns     []*function
}

// arbiter is the shell around fair: it hands slots to function workers, blocking a
// worker whose tenant may not have one yet until a release grants it. A worker owns
// one slotWaiter for its whole life, so waiting allocates nothing. There is an arbiter
// only when there is a slot to share: Config.MaxConcurrency or a tenant's Concurrency.
type arbiter struct {
	mu      sync.Mutex
	core    fair
	waiters []waiterQueue // per tenant, in arrival order
}

// slotWaiter is one worker's place in line and its slot.
type slotWaiter struct {
	ready   chan struct{} // cap 1: a release granted the slot
	granted bool          // set with the send on ready, under arbiter.mu
	charge  float64       // the grant's charge, for the release
	at      time.Time     // when the worker got the slot
}

func newSlotWaiter() *slotWaiter { return &slotWaiter{ready: make(chan struct{}, 1)} }

func newArbiter(capacity int, tenants []*tenant) *arbiter {
	weights := make([]int, len(tenants))
	quotas := make([]int, len(tenants))
	for i, t := range tenants {
		weights[i], quotas[i] = t.cfg.Weight, t.cfg.Concurrency
	}
	return &arbiter{
		core:    newFair(capacity, initialSlotCost, weights, quotas),
		waiters: make([]waiterQueue, len(tenants)),
	}
}

// acquire returns once tenant t has been granted a slot for w, true, or when ctx is
// done, false (holding no slot).
func (a *arbiter) acquire(ctx context.Context, t int, w *slotWaiter) bool {
	a.mu.Lock()
	if charge, ok := a.core.Acquire(t); ok {
		a.mu.Unlock()
		w.charge, w.at = charge, time.Now()
		return true
	}
	a.waiters[t].push(w)
	a.mu.Unlock()
	select {
	case <-w.ready:
		// granted and charge were written before the send.
		w.granted, w.at = false, time.Now()
		return true
	case <-ctx.Done():
	}
	a.mu.Lock()
	if w.granted { // the grant raced the end of ctx: give the slot back
		w.granted = false
		<-w.ready
		a.mu.Unlock()
		a.release(t, w, 0)
		return false
	}
	a.waiters[t].remove(w)
	a.core.Cancel(t)
	a.mu.Unlock()
	return false
}

// release returns tenant t's slot held by w, charging the time it was held (0 for a
// slot that was not used), and hands it to the next waiter the core picks.
func (a *arbiter) release(t int, w *slotWaiter, held time.Duration) {
	a.mu.Lock()
	next, charge, ok := a.core.Release(t, float64(held), w.charge)
	if ok {
		nw := a.waiters[next].pop()
		nw.granted, nw.charge = true, charge
		nw.ready <- struct{}{}
	}
	a.mu.Unlock()
}

// waiting is the number of tenant t's workers waiting for a slot.
func (a *arbiter) waiting(t int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.core.Waiting(t)
}

// waiterQueue is a FIFO of waiters whose memory stays within twice its longest line.
type waiterQueue struct {
	ws   []*slotWaiter
	head int
}

func (q *waiterQueue) push(w *slotWaiter) {
	if q.head > 0 && len(q.ws) == cap(q.ws) {
		n := copy(q.ws, q.ws[q.head:])
		clear(q.ws[n:])
		q.ws, q.head = q.ws[:n], 0
	}
	q.ws = append(q.ws, w)
}

// pop removes the oldest waiter; the queue must not be empty.
func (q *waiterQueue) pop() *slotWaiter {
	w := q.ws[q.head]
	q.ws[q.head] = nil
	q.head++
	if q.head == len(q.ws) {
		q.ws, q.head = q.ws[:0], 0
	}
	return w
}

func (q *waiterQueue) remove(w *slotWaiter) {
	if i := slices.Index(q.ws[q.head:], w); i >= 0 {
		q.ws = slices.Delete(q.ws, q.head+i, q.head+i+1)
	}
}
