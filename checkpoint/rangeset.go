package checkpoint

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Range is the half-open interval of offsets [Start, End).
type Range struct {
	Start, End int64
}

// Len is the number of offsets in r.
func (r Range) Len() int64 { return r.End - r.Start }

// RangeSet is a set of offsets kept as sorted, disjoint, non-adjacent half-open ranges.
// Completed offsets above a watermark arrive mostly in order and in runs, so a handful of
// ranges describe millions of offsets. The zero value is an empty set. A RangeSet is not
// safe for concurrent mutation.
//
// Offsets must be below math.MaxInt64 (the exclusive end of a range must be representable).
type RangeSet struct {
	r []Range
}

// Add puts off in the set. Adding offsets in increasing order next to the last range
// extends that range in place and does not allocate.
func (s *RangeSet) Add(off int64) {
	if off == math.MaxInt64 {
		panic("checkpoint: RangeSet.Add: offset math.MaxInt64 cannot be stored (the range end would overflow)")
	}
	// The common case: the offset continues or follows the last range.
	if n := len(s.r); n > 0 {
		last := &s.r[n-1]
		switch {
		case off == last.End:
			last.End++
			return
		case off > last.End:
			s.r = append(s.r, Range{off, off + 1})
			return
		}
	} else {
		s.r = append(s.r, Range{off, off + 1})
		return
	}
	s.AddRange(off, off+1)
}

// AddRange puts every offset in [start, end) in the set. An empty range (end <= start)
// changes nothing.
func (s *RangeSet) AddRange(start, end int64) {
	if end <= start {
		return
	}
	// i: the first range that ends at or after start (it may touch or overlap the new one).
	i := sort.Search(len(s.r), func(k int) bool { return s.r[k].End >= start })
	// j: the first range that starts after end (it can neither touch nor overlap).
	j := i + sort.Search(len(s.r)-i, func(k int) bool { return s.r[i+k].Start > end })
	if i == j {
		s.r = append(s.r, Range{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = Range{start, end}
		return
	}
	merged := Range{min(start, s.r[i].Start), max(end, s.r[j-1].End)}
	s.r[i] = merged
	s.r = append(s.r[:i+1], s.r[j:]...)
}

// Contains reports whether off is in the set, in O(log ranges).
func (s *RangeSet) Contains(off int64) bool {
	i := sort.Search(len(s.r), func(k int) bool { return s.r[k].End > off })
	return i < len(s.r) && s.r[i].Start <= off
}

// TrimBelow removes every offset below off.
func (s *RangeSet) TrimBelow(off int64) {
	i := sort.Search(len(s.r), func(k int) bool { return s.r[k].End > off })
	if i > 0 {
		// Copy down rather than reslice so the backing array is reused and never leaks
		// its front.
		n := copy(s.r, s.r[i:])
		clear(s.r[n:])
		s.r = s.r[:n]
	}
	if len(s.r) > 0 && s.r[0].Start < off {
		s.r[0].Start = off
	}
}

// Absorb advances a watermark over the set: if the first range starts at or below
// watermark, the watermark moves to that range's end (or stays, if it is already larger).
// Every offset below the returned watermark is dropped from the set, and the returned
// watermark is never below the one given.
func (s *RangeSet) Absorb(watermark int64) int64 {
	s.TrimBelow(watermark)
	if len(s.r) > 0 && s.r[0].Start <= watermark {
		// After the trim the first range starts exactly at watermark; the next one
		// cannot touch it (ranges are non-adjacent), so one step is enough.
		watermark = s.r[0].End
		s.TrimBelow(watermark)
	}
	return watermark
}

// Ranges returns the ranges in increasing order. The slice is a read-only view that is
// valid until the next mutation of s.
func (s *RangeSet) Ranges() []Range { return s.r }

// NumRanges is the number of disjoint ranges in the set.
func (s *RangeSet) NumRanges() int { return len(s.r) }

// Count is the number of offsets in the set.
func (s *RangeSet) Count() int64 {
	var n int64
	for _, r := range s.r {
		n += r.Len()
	}
	return n
}

// IsEmpty reports whether the set holds no offset.
func (s *RangeSet) IsEmpty() bool { return len(s.r) == 0 }

// Clone returns a deep copy of s.
func (s *RangeSet) Clone() RangeSet {
	if len(s.r) == 0 {
		return RangeSet{}
	}
	return RangeSet{r: append([]Range(nil), s.r...)}
}

// String renders the set as "{[0,5) [7,8)}".
func (s *RangeSet) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, r := range s.r {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "[%d,%d)", r.Start, r.End)
	}
	b.WriteByte('}')
	return b.String()
}
