package checkpoint

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// rangesOf copies the ranges of s, with nil for an empty set so comparisons ignore capacity.
func rangesOf(s *RangeSet) []Range {
	if s.IsEmpty() {
		return nil
	}
	return slices.Clone(s.Ranges())
}

func TestRangeSetZeroValue(t *testing.T) {
	t.Parallel()
	var s RangeSet
	require.True(t, s.IsEmpty())
	require.Zero(t, s.NumRanges())
	require.Zero(t, s.Count())
	require.False(t, s.Contains(0))
	require.Equal(t, "{}", s.String())
	require.Equal(t, int64(7), s.Absorb(7))
	s.TrimBelow(100)
	require.True(t, s.IsEmpty())
	c := s.Clone()
	require.True(t, c.IsEmpty())
}

func TestRangeSetAdd(t *testing.T) {
	t.Parallel()
	var s RangeSet
	for _, off := range []int64{5, 6, 7, 10, 3, 4, 8} {
		s.Add(off)
	}
	require.Equal(t, []Range{{3, 9}, {10, 11}}, rangesOf(&s))
	s.Add(9) // bridges the two ranges
	require.Equal(t, []Range{{3, 11}}, rangesOf(&s))
	s.Add(5) // already present
	require.Equal(t, []Range{{3, 11}}, rangesOf(&s))
	s.Add(1)
	require.Equal(t, []Range{{1, 2}, {3, 11}}, rangesOf(&s))
	require.Equal(t, int64(9), s.Count())
	require.Equal(t, "{[1,2) [3,11)}", s.String())
}

func TestRangeSetAddRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start []Range
		add   Range
		want  []Range
	}{
		{"into empty", nil, Range{2, 5}, []Range{{2, 5}}},
		{"empty range is a no-op", []Range{{2, 5}}, Range{7, 7}, []Range{{2, 5}}},
		{"inverted range is a no-op", []Range{{2, 5}}, Range{9, 7}, []Range{{2, 5}}},
		{"before, apart", []Range{{5, 8}}, Range{1, 3}, []Range{{1, 3}, {5, 8}}},
		{"before, adjacent", []Range{{5, 8}}, Range{1, 5}, []Range{{1, 8}}},
		{"after, adjacent", []Range{{5, 8}}, Range{8, 9}, []Range{{5, 9}}},
		{"after, apart", []Range{{5, 8}}, Range{9, 10}, []Range{{5, 8}, {9, 10}}},
		{"inside", []Range{{5, 8}}, Range{6, 7}, []Range{{5, 8}}},
		{"covering several", []Range{{1, 2}, {4, 5}, {7, 8}, {10, 11}}, Range{3, 9}, []Range{{1, 2}, {3, 9}, {10, 11}}},
		{"bridging adjacents", []Range{{1, 2}, {4, 5}}, Range{2, 4}, []Range{{1, 5}}},
		{"between", []Range{{1, 2}, {8, 9}}, Range{4, 5}, []Range{{1, 2}, {4, 5}, {8, 9}}},
		{"covering all", []Range{{1, 2}, {4, 5}}, Range{0, 100}, []Range{{0, 100}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s RangeSet
			for _, r := range tc.start {
				s.AddRange(r.Start, r.End)
			}
			s.AddRange(tc.add.Start, tc.add.End)
			require.Equal(t, tc.want, s.Ranges())
		})
	}
}

func TestRangeSetTrimAndAbsorb(t *testing.T) {
	t.Parallel()
	var s RangeSet
	s.AddRange(3, 6)
	s.AddRange(8, 10)
	s.AddRange(12, 13)

	c := s.Clone()
	c.TrimBelow(4)
	require.Equal(t, []Range{{4, 6}, {8, 10}, {12, 13}}, rangesOf(&c))
	c.TrimBelow(9)
	require.Equal(t, []Range{{9, 10}, {12, 13}}, rangesOf(&c))
	c.TrimBelow(100)
	require.True(t, c.IsEmpty())
	// The clone is independent.
	require.Equal(t, []Range{{3, 6}, {8, 10}, {12, 13}}, rangesOf(&s))

	// A gap below the first range: nothing to absorb.
	c = s.Clone()
	require.Equal(t, int64(2), c.Absorb(2))
	require.Equal(t, 3, c.NumRanges())
	// The first range starts at the watermark: absorbed.
	require.Equal(t, int64(6), c.Absorb(3))
	require.Equal(t, []Range{{8, 10}, {12, 13}}, rangesOf(&c))
	// The watermark is inside a later range: everything below goes, that range is absorbed.
	c = s.Clone()
	require.Equal(t, int64(10), c.Absorb(9))
	require.Equal(t, []Range{{12, 13}}, rangesOf(&c))
	// The watermark is beyond everything.
	c = s.Clone()
	require.Equal(t, int64(50), c.Absorb(50))
	require.True(t, c.IsEmpty())
	// The watermark sits in a gap: offsets below are dropped, the watermark stays.
	c = s.Clone()
	require.Equal(t, int64(7), c.Absorb(7))
	require.Equal(t, []Range{{8, 10}, {12, 13}}, rangesOf(&c))
}

func TestRangeSetAddMaxInt64Panics(t *testing.T) {
	t.Parallel()
	var s RangeSet
	require.Panics(t, func() { s.Add(1<<63 - 1) })
}

func TestRangeSetAddInOrderDoesNotAllocate(t *testing.T) {
	var s RangeSet
	s.Add(0)
	off := int64(1)
	allocs := testing.AllocsPerRun(1000, func() {
		s.Add(off)
		off++
	})
	require.Zero(t, allocs)
	require.Equal(t, 1, s.NumRanges())
}

// model is the obvious implementation RangeSet must agree with.
type model map[int64]bool

func (m model) ranges() []Range {
	offs := make([]int64, 0, len(m))
	for o := range m {
		offs = append(offs, o)
	}
	slices.Sort(offs)
	var out []Range
	for _, o := range offs {
		if n := len(out); n > 0 && out[n-1].End == o {
			out[n-1].End++
			continue
		}
		out = append(out, Range{o, o + 1})
	}
	return out
}

// checkInvariants fails if s is not sorted, disjoint and non-adjacent.
func checkInvariants(t testing.TB, s *RangeSet) {
	t.Helper()
	rs := s.Ranges()
	for i, r := range rs {
		if r.Start >= r.End {
			t.Fatalf("range %d %v is empty in %v", i, r, s.String())
		}
		if i > 0 && rs[i-1].End >= r.Start {
			t.Fatalf("ranges %d and %d touch or overlap in %v", i-1, i, s.String())
		}
	}
}

// applyOp runs one random operation on both s and m and checks that they agree.
func applyOp(t testing.TB, rng *rand.Rand, s *RangeSet, m model, span int64, wm *int64) {
	t.Helper()
	switch op := rng.IntN(100); {
	case op < 45:
		off := rng.Int64N(span)
		s.Add(off)
		m[off] = true
	case op < 60:
		start := rng.Int64N(span)
		end := start + rng.Int64N(8) - 1 // sometimes empty or inverted
		s.AddRange(start, end)
		for o := start; o < end; o++ {
			m[o] = true
		}
	case op < 85:
		off := rng.Int64N(span + 2)
		if got, want := s.Contains(off), m[off]; got != want {
			t.Fatalf("Contains(%d) = %v, model says %v; set %v", off, got, want, s.String())
		}
	case op < 90:
		off := rng.Int64N(span)
		s.TrimBelow(off)
		for o := range m {
			if o < off {
				delete(m, o)
			}
		}
	case op < 97:
		w := *wm + rng.Int64N(4)
		got := s.Absorb(w)
		want := w
		for m[want] {
			want++
		}
		if got != want {
			t.Fatalf("Absorb(%d) = %d, model says %d", w, got, want)
		}
		for o := range m {
			if o < want {
				delete(m, o)
			}
		}
		*wm = want
	default:
		c := s.Clone()
		c.Add(span + 5)
		if s.Contains(span + 5) {
			t.Fatalf("Clone shares storage with the original")
		}
	}
	checkInvariants(t, s)
	if got := int64(len(m)); s.Count() != got {
		t.Fatalf("Count = %d, model has %d", s.Count(), got)
	}
	if s.IsEmpty() != (len(m) == 0) {
		t.Fatalf("IsEmpty = %v with %d offsets", s.IsEmpty(), len(m))
	}
}

func TestRangeSetAgainstModel(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 4; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed*7))
		var s RangeSet
		m := model{}
		var wm int64
		span := int64(64) << (2 * seed) // from dense to sparse
		for i := 0; i < 30_000; i++ {
			applyOp(t, rng, &s, m, span, &wm)
			if i%1000 == 0 {
				require.Equal(t, m.ranges(), rangesOf(&s), "seed %d op %d", seed, i)
			}
		}
		require.Equal(t, m.ranges(), rangesOf(&s))
	}
}

func FuzzRangeSet(f *testing.F) {
	f.Add(uint64(1), uint16(100), uint8(6))
	f.Add(uint64(42), uint16(1000), uint8(20))
	f.Fuzz(func(t *testing.T, seed uint64, ops uint16, spanBits uint8) {
		rng := rand.New(rand.NewPCG(seed, 1))
		span := int64(1) << (spanBits%24 + 1)
		var s RangeSet
		m := model{}
		var wm int64
		for range int(ops) % 2000 {
			applyOp(t, rng, &s, m, span, &wm)
		}
		if got, want := rangesOf(&s), m.ranges(); !slices.Equal(got, want) {
			t.Fatalf("ranges %v, model %v", got, want)
		}
	})
}

func BenchmarkRangeSetAddInOrder(b *testing.B) {
	var s RangeSet
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Add(int64(i))
	}
}

func BenchmarkRangeSetAddRandom(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	offs := make([]int64, 1<<16)
	for i := range offs {
		offs[i] = rng.Int64N(1 << 20)
	}
	var s RangeSet
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Add(offs[i&(len(offs)-1)])
	}
}

func BenchmarkRangeSetContains(b *testing.B) {
	var s RangeSet
	for i := int64(0); i < 1<<20; i += 3 { // ~350k ranges: the worst case, no runs
		s.Add(i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = s.Contains(int64(i) & (1<<20 - 1))
	}
}
