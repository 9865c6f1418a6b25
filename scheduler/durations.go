package scheduler

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Buckets of the attempt duration histogram: upper bounds of 100µs doubling up to
// durationBuckets of them (100µs … ~105s), then +Inf.
const (
	durationBase    = 100 * time.Microsecond
	durationBuckets = 21
)

// durations is a histogram of attempt durations made of atomic counters, so an attempt
// pays one bucket index and two atomic adds; the collector turns it into a Prometheus
// histogram at scrape time.
type durations struct {
	counts [durationBuckets + 1]atomic.Uint64 // the last one is +Inf
	sumNS  atomic.Uint64
}

// durationBucket is the index of the smallest bucket whose upper bound is at least d.
func durationBucket(d time.Duration) int {
	if d <= durationBase {
		return 0
	}
	return min(bits.Len64(uint64((d-1)/durationBase)), durationBuckets)
}

// durationBound is bucket i's upper bound in seconds (i < durationBuckets).
func durationBound(i int) float64 { return (durationBase << i).Seconds() }

func (h *durations) observe(d time.Duration) {
	d = max(d, 0)
	h.counts[durationBucket(d)].Add(1)
	h.sumNS.Add(uint64(d))
}

// snapshot returns the cumulative counts by upper bound (seconds), the total count and
// the sum in seconds, as prometheus.MustNewConstHistogram takes them. Counters read
// while attempts end may be a few apart; each stays monotonic.
func (h *durations) snapshot() (buckets map[float64]uint64, count uint64, sum float64) {
	buckets = make(map[float64]uint64, durationBuckets)
	var cum uint64
	for i := range durationBuckets {
		cum += h.counts[i].Load()
		buckets[durationBound(i)] = cum
	}
	count = cum + h.counts[durationBuckets].Load()
	return buckets, count, time.Duration(h.sumNS.Load()).Seconds()
}

// DurationHistogram is a snapshot of a function's attempt durations since the
// scheduler started: Counts[i] attempts took at most DurationBounds()[i] and more than
// the bound before it; the last count is of those longer than every bound.
type DurationHistogram struct {
	Counts [durationBuckets + 1]uint64
}

// DurationBounds are the upper bounds of DurationHistogram's buckets but the last:
// 100µs doubling to about 105s.
func DurationBounds() []time.Duration {
	out := make([]time.Duration, durationBuckets)
	for i := range out {
		out[i] = durationBase << i
	}
	return out
}

// Total is the number of attempts in h.
func (h DurationHistogram) Total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Sub is what happened between earlier and h: h's counts minus earlier's (a count
// that went down, as it never does, counts 0).
func (h DurationHistogram) Sub(earlier DurationHistogram) DurationHistogram {
	var out DurationHistogram
	for i := range h.Counts {
		if h.Counts[i] > earlier.Counts[i] {
			out.Counts[i] = h.Counts[i] - earlier.Counts[i]
		}
	}
	return out
}

// Quantile is the upper bound of the bucket that holds the q-quantile (0 < q ≤ 1) of
// h: at least that share of the attempts took at most that long. It reports false when
// h is empty or the quantile is beyond the largest bound.
func (h DurationHistogram) Quantile(q float64) (time.Duration, bool) {
	total := h.Total()
	if total == 0 || q <= 0 || q > 1 {
		return 0, false
	}
	rank := uint64(q*float64(total) + 0.999999) // the ceil of q·total, at least 1
	var cum uint64
	for i := range durationBuckets {
		if cum += h.Counts[i]; cum >= rank {
			return durationBase << i, true
		}
	}
	return 0, false
}

// histogram is the snapshot of h.
func (h *durations) histogram() DurationHistogram {
	var out DurationHistogram
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	return out
}
