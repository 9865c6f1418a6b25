package tailer

import (
	"fmt"

	"github.com/kasync/kasync/checkpoint"
)

// window tracks the records of one partition from the moment they are read until they
// are done. It is a pure data structure: no I/O, no clock, no goroutines, no locking.
//
// Records are added in increasing offset order (the order Kafka returns them; offsets may
// have gaps from compaction or transaction markers) and completed in any order. The
// watermark is the lowest offset not yet done: every offset below it was either done or
// never existed, so it is the offset to resume from (and to commit to Kafka).
//
// Internally a ring of (offset, done) in read order; done entries at the head are dropped
// at once, so the ring holds exactly the records from the watermark up to the last read.
// Its size is a power of two, so ring positions are masked, not divided; and as offsets
// are mostly contiguous, Done finds an offset at its distance from the head in one
// probe, falling back to a binary search where gaps moved it. It allocates only when
// it grows.
type window struct {
	offsets []int64
	done    []bool
	times   []int64 // each record's timestamp (unix ms; 0 when not given), for lag in time
	mask    int     // len(offsets)-1
	head    int     // ring index of the oldest entry
	n       int     // entries in the ring
	pending int     // entries not done
	next    int64   // offset after the last record added (or the start offset)
}

func newWindow(start int64) *window {
	return &window{next: start}
}

// Add records that offset off was read and is in flight. Offsets must increase.
func (w *window) Add(off int64) error { return w.AddAt(off, 0) }

// AddAt is Add for a record with timestamp ms (unix milliseconds), which Oldest
// reports while the record is the oldest not done.
func (w *window) AddAt(off, ms int64) error {
	if off < w.next {
		return fmt.Errorf("offset %d is below the next expected offset %d", off, w.next)
	}
	if w.n == len(w.offsets) {
		w.grow()
	}
	i := (w.head + w.n) & w.mask
	w.offsets[i] = off
	w.done[i] = false
	w.times[i] = ms
	w.n++
	w.pending++
	w.next = off + 1
	return nil
}

// Skip records that off was read but needs no work (done in an earlier run).
func (w *window) Skip(off int64) error {
	if err := w.Add(off); err != nil {
		return err
	}
	w.Done(off)
	return nil
}

// Done marks off as done and reports whether it was in flight (false for an offset that
// was never added or is already done, so a duplicate result changes nothing).
func (w *window) Done(off int64) bool {
	i, ok := w.find(off)
	if !ok || w.done[i] {
		return false
	}
	w.done[i] = true
	w.pending--
	for w.n > 0 && w.done[w.head] {
		w.head = (w.head + 1) & w.mask
		w.n--
	}
	return true
}

// Watermark is the lowest offset not done: where a new owner resumes.
func (w *window) Watermark() int64 {
	if w.n > 0 {
		return w.offsets[w.head]
	}
	return w.next
}

// Oldest is the timestamp (unix ms, as given to AddAt) of the record at the watermark,
// the oldest read and not done; false when every record read is done.
func (w *window) Oldest() (ms int64, ok bool) {
	if w.n == 0 {
		return 0, false
	}
	return w.times[w.head], true
}

// InFlight is the number of records read and not yet done.
func (w *window) InFlight() int { return w.pending }

// Next is the offset after the last record read.
func (w *window) Next() int64 { return w.next }

// DoneAbove adds to s every done offset above the watermark.
func (w *window) DoneAbove(s *checkpoint.RangeSet) {
	for k := 0; k < w.n; k++ {
		i := (w.head + k) & w.mask
		if w.done[i] {
			s.Add(w.offsets[i])
		}
	}
}

// find returns the ring index holding off. Without gaps between the head and off, off
// is at its distance from the head; otherwise it is found by binary search over the
// ring in read order.
func (w *window) find(off int64) (int, bool) {
	if w.n == 0 {
		return 0, false
	}
	first := w.offsets[w.head]
	if d := off - first; d >= 0 && d < int64(w.n) {
		if i := (w.head + int(d)) & w.mask; w.offsets[i] == off {
			return i, true
		}
	}
	lo, hi := 0, w.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if w.offsets[(w.head+mid)&w.mask] < off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == w.n {
		return 0, false
	}
	i := (w.head + lo) & w.mask
	return i, w.offsets[i] == off
}

func (w *window) grow() {
	size := 2 * len(w.offsets)
	if size == 0 {
		size = 64
	}
	offsets := make([]int64, size)
	done := make([]bool, size)
	times := make([]int64, size)
	for k := 0; k < w.n; k++ {
		i := (w.head + k) & w.mask
		offsets[k] = w.offsets[i]
		done[k] = w.done[i]
		times[k] = w.times[i]
	}
	w.offsets, w.done, w.times, w.head, w.mask = offsets, done, times, 0, size-1
}
