package tailer

import (
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/checkpoint"
)

// pauseReason is a reason a partition's fetching is paused; it resumes when none is left.
type pauseReason uint8

const (
	pauseFull  pauseReason = 1 << iota // the window reached PartitionMaxInFlight
	pauseHold                          // records are held until their time (ActionWait)
	pauseStorm                         // a record retries in place: its function's storm guard is on
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
	// hw is the partition's high watermark in the latest fetch that returned records
	// for it: the log end as far as the tailer knows.
	hw int64
	// skip holds offsets above the watermark that an earlier run completed.
	skip checkpoint.RangeSet
	// fenced: the partition is no longer ours; nothing may change its checkpoint.
	fenced bool
	// dirty: the watermark or done set changed since the last checkpoint write.
	dirty bool
	// pause holds the reasons fetching is paused; zero when it is not.
	pause pauseReason
	// held are records read and waiting, in offset order, for the head's time
	// (ActionWait); they are in the window. At most one holdQueue item exists for a
	// partition with held records.
	held []*kgo.Record
	// parked counts records in the window that neither run nor are being produced:
	// held ones, those waiting for an in-place retry and those waiting behind a busy
	// key. A revocation does not wait for them; the partition's next owner reads them
	// again.
	parked int
	// keys are the busy keys (OrderKey; the one key "" in OrderPartition), each with
	// the records waiting behind its active one; blocked counts those records.
	keys    map[string]*keyLine
	blocked int
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
