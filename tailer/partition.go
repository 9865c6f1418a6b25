package tailer

import (
	"sync"
	"sync/atomic"

	"github.com/kasync/kasync/checkpoint"
)

// partition is this tailer's ownership of one partition for one assignment. A new
// assignment of the same partition gets a new partition value, so a result that refers
// to an older one is recognised as fenced by pointer, without epochs to compare.
type partition struct {
	key checkpoint.Key

	// revoking is set when the partition is being handed back: no new records are
	// dispatched for it, but results of records in flight still count.
	revoking atomic.Bool

	mu sync.Mutex
	// win is nil until the start offset is known (AdjustFetchOffsetsFn).
	win *window
	// skip holds offsets above the watermark that an earlier run completed.
	skip checkpoint.RangeSet
	// fenced: the partition is no longer ours; nothing may change its checkpoint.
	fenced bool
	// dirty: the watermark or done set changed since the last checkpoint write.
	dirty bool
	// paused: fetching is paused because the window is full.
	paused bool
	// retrying counts records parked for an in-place retry (in the window, not running).
	retrying int
}

// stateLocked is the checkpoint state of the partition: its watermark and the offsets
// done above it (completed in this run or skipped from an earlier one). ok is false
// while no offset is known yet. p.mu must be held.
func (p *partition) stateLocked() (st checkpoint.State, ok bool) {
	if p.win == nil || p.win.Watermark() < 0 {
		return st, false
	}
	st.Watermark = p.win.Watermark()
	p.win.DoneAbove(&st.Done)
	p.skip.TrimBelow(st.Watermark)
	for _, r := range p.skip.Ranges() {
		st.Done.AddRange(r.Start, r.End)
	}
	st.Watermark = st.Done.Absorb(st.Watermark)
	return st, true
}
