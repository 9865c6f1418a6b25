package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a jittered exponential backoff between Min and Max. The zero value is
// not useful; set Min and Max (Max ≥ Min > 0). It is not safe for concurrent use: each
// retry loop owns one.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns how long to wait before the next try: the current delay spread over
// [d/2, d), so that clients cut off together do not retry in step. Each call doubles
// the delay, up to Max.
func (b *Backoff) Next() time.Duration {
	if b.cur < b.Min {
		b.cur = b.Min
	}
	d := b.cur
	b.cur = min(2*b.cur, b.Max)
	return Jitter(d)
}

// Reset starts the next wait from Min again, after a success.
func (b *Backoff) Reset() { b.cur = b.Min }

// Jitter spreads d over [d/2, d).
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// Sleep waits for d or until ctx is done; it reports whether the full wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
