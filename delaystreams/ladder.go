package delaystreams

import (
	"errors"
	"fmt"
	"time"
)

// MaxRungs bounds the number of rungs of a ladder. Every rung is a topic that every
// delay reader consumes, and a short ladder already reaches any delay: the greedy
// choice takes the largest rung as often as it fits.
const MaxRungs = 32

// DefaultRungs returns the default ladder, exactly 30s, 1m, 5m, 30m (DESIGN.md, "Delay
// ladder"). Each call returns a new slice.
func DefaultRungs() []time.Duration {
	return []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute}
}

// Ladder is the set of fixed delay rungs and the tolerance of the reader that holds a
// record in place. It is pure (no clock, no I/O), immutable after NewLadder and safe
// for concurrent use.
//
// A record delayed by D carries its absolute due time. At every step (when the router
// first delays it, and each time a delay reader finds it ready) the caller computes
// left = due − now and calls Pick(left):
//
//   - left ≥ the smallest rung: the largest rung ≤ left (greedy);
//   - tolerance < left < the smallest rung: the smallest rung (it ends less than one
//     smallest rung late);
//   - left ≤ tolerance (also when the due time has passed): no rung; the record is due
//     now or so soon that the reader holds it in place until due, then runs it.
//
// Because every step starts again from the absolute due time, lateness of one hop is
// absorbed by the next choice and hops never accumulate error: a record never runs
// before its due time and, when each hop takes exactly its rung, runs less than
// (smallest rung − tolerance) after it.
type Ladder struct {
	rungs     []time.Duration // strictly ascending, each > 0
	tolerance time.Duration   // 0 ≤ tolerance < rungs[0]
}

// NewLadder checks and copies rungs. The rungs must be strictly ascending and each
// positive, at most MaxRungs of them; tolerance must be ≥ 0 and below the smallest rung
// (a tolerance as long as a rung would hold records in place instead of delaying them
// there). Every problem is reported at once, each naming the index and the fix.
func NewLadder(rungs []time.Duration, tolerance time.Duration) (*Ladder, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("delaystreams: ladder: "+format, args...))
	}
	if len(rungs) == 0 {
		bad("no rungs; give at least one, like [30s, 1m, 5m, 30m]")
	}
	if len(rungs) > MaxRungs {
		bad("%d rungs; give at most %d (each rung is a topic every delay reader consumes)", len(rungs), MaxRungs)
	}
	smallest := time.Duration(0) // the smallest positive rung, whatever the order
	for i, r := range rungs {
		if r <= 0 {
			bad("rungs[%d]: %s is not positive; every rung must be a delay above zero, like 30s", i, r)
			continue
		}
		if smallest == 0 || r < smallest {
			smallest = r
		}
		if i > 0 && rungs[i-1] > 0 && r <= rungs[i-1] {
			bad("rungs[%d]: %s is not longer than rungs[%d] (%s); list rungs in ascending order without repeats, like [30s, 1m, 5m, 30m]",
				i, r, i-1, rungs[i-1])
		}
	}
	switch {
	case tolerance < 0:
		bad("tolerance %s is negative; use 0 or a small positive duration", tolerance)
	case smallest > 0 && tolerance >= smallest:
		bad("tolerance %s is not below the smallest rung (%s); use a tolerance shorter than every rung", tolerance, smallest)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Ladder{rungs: append([]time.Duration(nil), rungs...), tolerance: tolerance}, nil
}

// Rungs returns a copy of the rungs, ascending.
func (l *Ladder) Rungs() []time.Duration { return append([]time.Duration(nil), l.rungs...) }

// Len returns the number of rungs.
func (l *Ladder) Len() int { return len(l.rungs) }

// Rung returns the delay of rung i (0 ≤ i < Len()), without the copy Rungs makes. It
// panics when i is out of range, like a slice index.
func (l *Ladder) Rung(i int) time.Duration { return l.rungs[i] }

// Tolerance returns how close to its due time a record may be and still be held in
// place by the reader instead of taking another rung.
func (l *Ladder) Tolerance() time.Duration { return l.tolerance }

// Pick chooses the rung for a record whose absolute due time is left from now: the
// largest rung ≤ left; the smallest rung when left is below it but above the
// tolerance; no rung (ok false) when left ≤ tolerance, including left ≤ 0, where the
// record is due now or so soon that the reader holds it in place until its due time.
func (l *Ladder) Pick(left time.Duration) (rung int, ok bool) {
	if left <= l.tolerance {
		return -1, false
	}
	// Binary search for the first rung > left; at most 32 rungs, so five steps.
	lo, hi := 0, len(l.rungs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if l.rungs[mid] <= left {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return max(lo-1, 0), true
}

// Plan returns the rungs, in order, that a record delayed by d passes when each hop
// takes exactly its rung's delay. After the last hop the reader holds the record in
// place for Wait(d). Plan is for tests, docs and the status view; the delay reader
// calls Pick at each hop instead, with the time then left. The plan has about
// d / (largest rung) entries, so keep d sane (see ClampDue).
func (l *Ladder) Plan(d time.Duration) []int {
	var plan []int
	for {
		r, ok := l.Pick(d)
		if !ok {
			return plan
		}
		plan = append(plan, r)
		d -= l.rungs[r]
	}
}

// Wait returns how long the reader holds a record delayed by d in place after the hops
// of Plan(d): 0 ≤ Wait(d) ≤ tolerance. The record runs at sum(Plan(d)) + Wait(d) after
// it was first delayed, which is never before d and less than (smallest rung −
// tolerance) after it.
func (l *Ladder) Wait(d time.Duration) time.Duration {
	// While d ≥ the largest rung the greedy choice is the largest rung: skip those hops
	// in one step, so that Wait costs the same for any d.
	if largest := l.rungs[len(l.rungs)-1]; d >= largest {
		d -= d / largest * largest
	}
	for {
		r, ok := l.Pick(d)
		if !ok {
			return max(d, 0)
		}
		d -= l.rungs[r]
	}
}
