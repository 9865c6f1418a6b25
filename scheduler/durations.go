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
