package delaystreams

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxAttempt bounds an attempt number read from a kasync-attempt header (ClampAttempt)
// and a policy's MaxAttempts. It is far above any useful retry.max_attempts, so a real
// count is never cut, and small enough that attempt+1 never overflows and a forged
// header cannot make a record look younger than it is for long.
const MaxAttempt = 1_000_000

// RetryPolicy is the retry policy of one function (config: functions[].retry). It is a
// plain value; Validate it once, then use it from any goroutine.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts a workload may make (1 ≤ MaxAttempts ≤
	// MaxAttempt); a retriable failure of the last one goes to the dead letter with
	// reason "exhausted".
	MaxAttempts int
	// Backoff is the delay before attempt 2, 3, ...; the last entry repeats. At least
	// one entry, each ≥ 0.
	Backoff []time.Duration
	// Jitter (0..1) spreads each delay d over [d·(1−Jitter/2), d·(1+Jitter/2)], so that a
	// burst of failures does not come back as a burst. 0 turns jitter off.
	Jitter float64
}

// Validate reports every problem of p at once, each naming the field and the fix.
func (p RetryPolicy) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("delaystreams: retry policy: "+format, args...))
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > MaxAttempt {
		bad("MaxAttempts (retry.max_attempts) %d is out of range; use 1 to %d (1 means no retries)", p.MaxAttempts, MaxAttempt)
	}
	if len(p.Backoff) == 0 {
		bad("Backoff (retry.backoff) is empty; give at least one delay, like [30s, 1m, 5m, 30m]")
	}
	for i, d := range p.Backoff {
		if d < 0 {
			bad("Backoff[%d] (retry.backoff[%d]) %s is negative; use 0 or a positive delay", i, i, d)
		}
	}
	if math.IsNaN(p.Jitter) || p.Jitter < 0 || p.Jitter > 1 {
		bad("Jitter %v is out of range; use 0 (none) to 1 (±50%%)", p.Jitter)
	}
	return errors.Join(errs...)
}

// Exhausted reports whether a workload that has made attempt attempts may not try
// again: attempt ≥ MaxAttempts. Clamp an attempt read from a header first
// (ClampAttempt), so that a forged value cannot retry a record forever.
func (p RetryPolicy) Exhausted(attempt int) bool { return attempt >= p.MaxAttempts }

// Delay returns the delay before the attempt after attempt (attempt 1 is the first
// run, so Delay(1, ...) is the wait before attempt 2): Backoff[attempt−1], the last
// entry for attempts past the list, jittered with r, and never less than retryAfter (a
// function's RetryAfter overrides a shorter backoff; the ladder then rounds it up to
// rungs when it picks them).
//
// r is a random number in [0, 1) that the caller draws (rand.Float64()), which keeps
// Delay pure; a value outside that range is clamped into it. An attempt below 1 counts
// as 1; a negative retryAfter is ignored. The result saturates at the largest Duration
// instead of overflowing.
func (p RetryPolicy) Delay(attempt int, retryAfter time.Duration, r float64) time.Duration {
	var d time.Duration
	if n := len(p.Backoff); n > 0 {
		d = p.Backoff[min(max(attempt, 1), n)-1]
	}
	if j := p.Jitter; d > 0 && j > 0 && j <= 1 {
		if math.IsNaN(r) || r < 0 {
			r = 0
		}
		r = min(r, math.Nextafter(1, 0))
		f := float64(d) * (1 - j/2 + j*r)
		if f >= math.MaxInt64 { // float64(MaxInt64) rounds up to 2^63, so ≥ catches it
			d = math.MaxInt64
		} else {
			d = time.Duration(f)
		}
	}
	return max(d, retryAfter, 0)
}

// ClampAttempt brings an attempt number read from a header into [1, MaxAttempt]: a
// garbage or forged value (−1, 0, 10^12) still gives a record that ends in success or
// the dead letter.
func ClampAttempt(a int64) int {
	return int(min(max(a, 1), MaxAttempt))
}

// ClampDue brings a due time read from a header into a sane range: a zero due time or
// one at or before the Unix epoch (garbage) is now, so the record is due at once; one
// more than maxAhead after now (forged, a year ahead) is now+maxAhead. A due time in
// the recent past is kept: the record is simply due. maxAhead ≤ 0 allows nothing
// after now.
func ClampDue(due, now time.Time, maxAhead time.Duration) time.Time {
	if due.IsZero() || due.UnixMilli() <= 0 {
		return now
	}
	if limit := now.Add(max(maxAhead, 0)); due.After(limit) {
		return limit
	}
	return due
}
