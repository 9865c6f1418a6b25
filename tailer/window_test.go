package tailer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/checkpoint"
)

func TestWindowInOrder(t *testing.T) {
	t.Parallel()
	w := newWindow(10)
	require.Equal(t, int64(10), w.Watermark())
	for off := int64(10); off < 20; off++ {
		require.NoError(t, w.Add(off))
	}
	require.Equal(t, 10, w.InFlight())
	require.True(t, w.Done(10))
	require.Equal(t, int64(11), w.Watermark())
	require.False(t, w.Done(10), "a second result for the same offset changes nothing")
	require.False(t, w.Done(99), "an offset never added changes nothing")
	require.True(t, w.Done(15))
	require.Equal(t, int64(11), w.Watermark(), "a hole keeps the watermark")
	var s checkpoint.RangeSet
	w.DoneAbove(&s)
	require.Equal(t, []checkpoint.Range{{Start: 15, End: 16}}, s.Ranges())
	for off := int64(11); off < 20; off++ {
		w.Done(off)
	}
	require.Equal(t, int64(20), w.Watermark(), "all done: the watermark is the next offset to read")
	require.Equal(t, 0, w.InFlight())
}

func TestWindowGapsAndSkips(t *testing.T) {
	t.Parallel()
	w := newWindow(-1) // start unknown (no checkpoint, reset policy decides)
	require.NoError(t, w.Add(100))
	require.NoError(t, w.Add(105)) // a gap: compaction or a transaction marker
	require.NoError(t, w.Skip(106))
	require.Error(t, w.Add(104), "offsets must increase")
	require.Equal(t, int64(100), w.Watermark())
	w.Done(100)
	require.Equal(t, int64(105), w.Watermark(), "offsets in a gap are not waited for")
	w.Done(105)
	require.Equal(t, int64(107), w.Watermark())
}

// TestWindowModel checks the window against a simple model over random histories:
// random gaps, random completion order, duplicate completions, ring growth. The
// histories with rare gaps exercise Done's one-probe lookup of contiguous offsets and
// its fallback when a gap moved an offset.
func TestWindowModel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		gap  func(r *rand.Rand) int64
	}{
		{"gaps", func(r *rand.Rand) int64 { return int64(r.IntN(3)) }},
		{"rare gaps", func(r *rand.Rand) int64 {
			if r.IntN(500) == 0 {
				return 1 + int64(r.IntN(50))
			}
			return 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testWindowModel(t, tc.gap)
		})
	}
}

func testWindowModel(t *testing.T, gap func(r *rand.Rand) int64) {
	ops := 1_000_000
	if testing.Short() {
		ops = 100_000
	}
	r := rand.New(rand.NewPCG(1, 2))
	w := newWindow(0)
	next := int64(0)
	var added []int64 // model: offsets added
	done := map[int64]bool{}
	var open []int64 // added, not done
	for i := 0; i < ops; i++ {
		switch {
		case r.IntN(2) == 0 && len(open) < 5000:
			next += 1 + gap(r)
			require.NoError(t, w.AddAt(next, 10*next)) // the model's timestamp of an offset is 10×it
			added = append(added, next)
			open = append(open, next)
		case len(open) > 0:
			j := r.IntN(len(open))
			off := open[j]
			open[j] = open[len(open)-1]
			open = open[:len(open)-1]
			require.True(t, w.Done(off))
			done[off] = true
			if r.IntN(10) == 0 {
				require.False(t, w.Done(off))
			}
		}
		// Model watermark: the lowest added offset not done, else the next offset.
		want := next + 1
		if len(added) == 0 {
			want = 0
		}
		if len(open) > 0 {
			want = slices.Min(open)
		}
		if i%97 == 0 || len(open) < 3 {
			require.Equal(t, want, w.Watermark(), "op %d", i)
			require.Equal(t, len(open), w.InFlight())
			oldest, ok := w.Oldest()
			require.Equal(t, len(open) > 0, ok, "op %d", i)
			if ok {
				require.Equal(t, 10*slices.Min(open), oldest, "op %d: Oldest is the watermark record's time", i)
			}
		}
		// Keep the model small: forget done offsets below the watermark.
		if len(added) > 20000 {
			wm := w.Watermark()
			k := 0
			for k < len(added) && added[k] < wm {
				delete(done, added[k])
				k++
			}
			added = append(added[:0], added[k:]...)
		}
	}
	var s checkpoint.RangeSet
	w.DoneAbove(&s)
	for _, off := range added {
		if off > w.Watermark() {
			require.Equal(t, done[off], s.Contains(off), "offset %d", off)
		}
	}
}

func BenchmarkWindowAddDone(b *testing.B) {
	w := newWindow(0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		off := int64(i)
		_ = w.Add(off)
		if i >= 1000 {
			w.Done(off - 1000 + int64(i%7)) // out of order within the window
		}
	}
}
