package scheduler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every duration falls in the smallest bucket whose bound holds it, checked against
// the bounds themselves.
func TestDurationBucket(t *testing.T) {
	t.Parallel()
	want := func(d time.Duration) int {
		for i := range durationBuckets {
			if d <= durationBase<<i {
				return i
			}
		}
		return durationBuckets
	}
	cases := []time.Duration{0, 1, durationBase - 1, durationBase, durationBase + 1, 2 * durationBase, 2*durationBase + 1,
		time.Millisecond, time.Second, 30 * time.Second, durationBase << (durationBuckets - 1), durationBase<<(durationBuckets-1) + 1, time.Hour}
	for i := range 2000 {
		cases = append(cases, time.Duration(i)*37*time.Microsecond, time.Duration(i*i)*time.Millisecond)
	}
	for _, d := range cases {
		require.Equal(t, want(d), durationBucket(d), "%v", d)
	}
}

func TestDurationsSnapshot(t *testing.T) {
	t.Parallel()
	var h durations
	for _, d := range []time.Duration{50 * time.Microsecond, 150 * time.Microsecond, time.Second, time.Hour} {
		h.observe(d)
	}
	buckets, count, sum := h.snapshot()
	require.EqualValues(t, 4, count)
	require.InDelta(t, (50*time.Microsecond + 150*time.Microsecond + time.Second + time.Hour).Seconds(), sum, 1e-9)
	require.EqualValues(t, 1, buckets[0.0001])
	require.EqualValues(t, 2, buckets[0.0002])
	require.EqualValues(t, 3, buckets[durationBound(durationBucket(time.Second))])
	require.EqualValues(t, 3, buckets[durationBound(durationBuckets-1)], "an hour is only in +Inf")
	require.Len(t, buckets, durationBuckets)
}

// Quantile is the bound of the bucket holding the q-th attempt, checked against a
// sorted list of the durations observed; Sub leaves what happened in between.
func TestDurationHistogramQuantile(t *testing.T) {
	t.Parallel()
	var h durations
	_, ok := h.histogram().Quantile(0.5)
	require.False(t, ok, "empty")
	var ds []time.Duration
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond // 0 .. ~1s, skewed short
		ds = append(ds, d)
		h.observe(d)
	}
	first := h.histogram()
	require.EqualValues(t, 1000, first.Total())
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 1} {
		got, ok := first.Quantile(q)
		require.True(t, ok)
		nth := ds[int(q*1000+0.999999)-1] // ds is sorted
		require.Equal(t, durationBase<<durationBucket(nth), got, "q %v: the %v-th duration is %v", q, q*1000, nth)
	}
	h.observe(time.Hour)
	_, ok = h.histogram().Quantile(1)
	require.False(t, ok, "beyond the largest bound")
	for range 10 {
		h.observe(20 * time.Second)
	}
	window := h.histogram().Sub(first)
	require.EqualValues(t, 11, window.Total())
	p50, ok := window.Quantile(0.5)
	require.True(t, ok)
	require.Equal(t, durationBase<<durationBucket(20*time.Second), p50, "only the attempts since first")
	require.Len(t, DurationBounds(), durationBuckets)
	require.Equal(t, durationBase<<(durationBuckets-1), DurationBounds()[durationBuckets-1])
}

func BenchmarkDurationsObserve(b *testing.B) {
	var h durations
	d := 3 * time.Millisecond
	for b.Loop() {
		h.observe(d)
	}
}
