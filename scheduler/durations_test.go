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

func BenchmarkDurationsObserve(b *testing.B) {
	var h durations
	d := 3 * time.Millisecond
	for b.Loop() {
		h.observe(d)
	}
}
