package scheduler

import (
	"math"
	"time"
)

// The adaptive limit's constants. They are not configurable: AIMD's halving and
// additive increase are the well-studied choice (TCP Reno), and the hold cap is a
// safety bound, not a tuning knob.
const (
	// adaptiveBackoff multiplies the limit on a decrease signal.
	adaptiveBackoff = 0.5
	// MaxHold caps how long an overloaded outcome's RetryAfter holds a function's new
	// starts: a downstream that asks for an hour of quiet gets 30 s, then a probe (the
	// attempts that do start are at the shrunk limit, and another overloaded answer
	// holds again). The workload's own retry honours its full RetryAfter elsewhere.
	MaxHold = 30 * time.Second
	// latencyShortAlpha and latencyBaseAlpha weigh a new success latency in the
	// short-term and long-term (baseline) averages; latencyWarmup successes must have
	// been seen before the latency signal may fire.
	latencyShortAlpha = 0.1
	latencyBaseAlpha  = 0.005
	latencyWarmup     = 50
)

// aimd is the pure core of a function's adaptive concurrency limit: no locks, no
// clock (now and latencies are passed in), no goroutines. The shell starts an attempt
// only while the attempts running are fewer than Limit and now is not before
// HeldUntil.
//
// Decrease signals are outcomes with ReasonOverloaded or ReasonTimeout and, when
// latencyFactor > 0, a success whose latency pushes the short-term average above
// latencyFactor times the baseline. A signal halves the limit (down to min) at most
// once per round trip: a signal from an attempt that started before the last decrease
// belongs to the overload event that caused it, so N concurrent 429s halve the limit
// once (as TCP ignores losses of packets sent before it cut its window). Each other
// success adds 1/limit, about +1 per round trip, up to max. Other failures (errors,
// fatal, panics, shutdown) say nothing about capacity and change nothing.
type aimd struct {
	disabled bool
	min, max int
	limit    float64 // in [min, max]; the effective limit is its floor

	started  uint64 // attempts started: the next one's sequence number
	recovery uint64 // signals from attempts started before this are ignored

	heldUntil time.Time // new starts wait until then; zero: never held

	latencyFactor float64 // 0: no latency signal
	short, base   float64 // averages of success latency, in seconds
	samples       int

	decreases uint64 // decrease signals acted on
}

func newAIMD(c AdaptiveConfig, concurrency int) aimd {
	a := aimd{
		disabled:      c.Disabled,
		min:           max(1, c.Min),
		max:           concurrency,
		limit:         float64(concurrency),
		latencyFactor: c.LatencyFactor,
	}
	a.min = min(a.min, a.max)
	return a
}

// Limit is the most attempts that may run at once now.
func (a *aimd) Limit() int { return int(a.limit) }

// HeldUntil is the time before which no attempt may start; zero if never held.
func (a *aimd) HeldUntil() time.Time { return a.heldUntil }

// Start records that an attempt starts and returns its sequence number, to be passed
// to Observe with its outcome.
func (a *aimd) Start() uint64 {
	seq := a.started
	a.started++
	return seq
}

// Observe takes the outcome of the attempt numbered seq, which ran for latency. now
// is read only for an overloaded outcome with a RetryAfter and may otherwise be zero.
func (a *aimd) Observe(now time.Time, seq uint64, o Outcome, latency time.Duration) {
	if a.disabled {
		return
	}
	switch {
	case o.Kind == OutcomeSuccess:
		if a.latencyFactor > 0 && a.slow(latency) {
			a.decrease(seq)
			return
		}
		if a.limit < float64(a.max) {
			a.limit = math.Min(float64(a.max), a.limit+1/a.limit)
		}
	case o.Reason == ReasonOverloaded:
		if o.RetryAfter > 0 {
			if until := now.Add(min(o.RetryAfter, MaxHold)); until.After(a.heldUntil) {
				a.heldUntil = until
			}
		}
		a.decrease(seq)
	case o.Reason == ReasonTimeout:
		a.decrease(seq)
	}
}

// decrease halves the limit unless the attempt seq started before the last decrease.
func (a *aimd) decrease(seq uint64) {
	if seq < a.recovery {
		return
	}
	a.recovery = a.started
	a.decreases++
	a.limit = math.Max(float64(a.min), math.Floor(a.limit*adaptiveBackoff))
}

// slow folds a success latency into the averages and reports whether the short-term
// average is above latencyFactor times the baseline.
func (a *aimd) slow(latency time.Duration) bool {
	x := latency.Seconds()
	if a.samples == 0 {
		a.short, a.base = x, x
	} else {
		a.short += latencyShortAlpha * (x - a.short)
		a.base += latencyBaseAlpha * (x - a.base)
	}
	a.samples++
	return a.samples >= latencyWarmup && a.short > a.latencyFactor*a.base
}
