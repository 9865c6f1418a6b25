package tailer

import (
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/checkpoint"
)

// TestCheckpointStateModel drives the whole checkpoint cycle of one partition — the
// window, the skip set, stateLocked, the codec, Resume, and a restart that re-reads the log
// the way accept does — with random operations, and checks it against a model that only
// knows which offsets truly completed. Operations: read new records (with random gaps, as
// compaction and transaction markers leave), complete in-flight records in random order,
// repeat completions, re-deliver a record below the read position, take a checkpoint, and
// crash and restart from the last checkpoint taken, losing every completion since.
//
// Properties, checked at every checkpoint and restart:
//
//	(a) no loss: every offset the state claims done (below its watermark, or in Done) had
//	    truly completed when the checkpoint was taken, and Done is exactly the completions
//	    this incarnation knows of above the watermark;
//	(b) bounded duplicates: after a restart, the records run again are exactly the
//	    offsets at or above the resumed watermark that are not in the resumed Done set;
//	(c) the watermark never moves backwards across the checkpoints of one incarnation,
//	    a restart never starts below the checkpoint nor below the group commit, and the
//	    first checkpoint after a restart is not below the restart's start;
//	(d) the encoded state decodes to exactly the state, and re-encodes to the same bytes.
//
// 1,000,000 operations by default (100,000 with -short, 10,000,000 with KASYNC_LONG=1),
// from a seed logged and overridable with KASYNC_SEED.
func TestCheckpointStateModel(t *testing.T) {
	t.Parallel()
	ops := 1_000_000
	if testing.Short() {
		ops = 100_000
	}
	if os.Getenv("KASYNC_LONG") == "1" {
		ops = 10_000_000
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("KASYNC_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "KASYNC_SEED must be an unsigned integer")
	}
	t.Logf("seed %d (rerun with KASYNC_SEED=%d), %d operations", seed, seed, ops)

	m := &stateModel{t: t, rng: rand.New(rand.NewPCG(seed, 7))}
	m.restart(checkpoint.State{}, false, -1)
	for m.op = 0; m.op < ops; m.op++ {
		switch n := m.rng.IntN(1000); {
		case n < 300:
			m.read()
		case n < 700:
			m.complete()
		case n < 800:
			m.completeAgain()
		case n < 830:
			m.redeliver()
		case n < 995:
			m.checkpoint()
		default:
			m.crash()
		}
	}
	m.checkpoint()
	m.crash()
	t.Logf("%d records in the log, %d checkpoints, %d restarts, %d runs, %d of them again (lost with a crash), %d skipped on re-read",
		len(m.log), m.checkpoints, m.restarts, m.runs, m.reruns, m.skipped)
	// A history without restarts or re-runs would not test what it claims to.
	require.Positive(t, m.restarts)
	require.Positive(t, m.reruns)
	require.Positive(t, m.skipped)
}

// stateModel is the test's world: a Kafka log that only grows, the truth of which of its
// records completed, and one incarnation of the partition at a time.
type stateModel struct {
	t   *testing.T
	rng *rand.Rand
	op  int

	// The log: existing offsets in increasing order (gaps are offsets that do not exist),
	// and whether each record's work truly completed, in any incarnation.
	log   []int64
	truly []bool
	// trueLow: index of the first record of the log not truly completed.
	trueLow int

	// The last checkpoint taken, as decoded from its encoding; none before the first.
	last     checkpoint.State
	haveLast bool
	// Watermarks of the checkpoints taken, for a group commit that lags behind.
	commits []int64

	// The current incarnation.
	p           *partition
	maxInFlight int
	firstIdx    int     // index in log of the first record it read
	readIdx     int     // index in log of the next record to read
	inFlight    []int64 // read, run, not completed
	completed   []int64 // a few recent completions, for repeated results
	// known: offsets at or above lastWatermark this incarnation knows are done (it resumed
	// with them in its Done set, or completed them). The state's Done must equal its part
	// above the watermark.
	known map[int64]struct{}
	// resumed: the state the incarnation started from, and lastWatermark the newest of it
	// and its checkpoints.
	resumed       checkpoint.State
	lastWatermark int64

	checkpoints, restarts, runs, reruns, skipped int
}

func (m *stateModel) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("op %d: "+format, append([]any{m.op}, args...)...)
}

// index returns the log index of off, and whether off exists.
func (m *stateModel) index(off int64) (int, bool) {
	i := sort.Search(len(m.log), func(k int) bool { return m.log[k] >= off })
	return i, i < len(m.log) && m.log[i] == off
}

// extend appends one record to the log after a random gap.
func (m *stateModel) extend() {
	next := int64(0)
	if n := len(m.log); n > 0 {
		next = m.log[n-1] + 1
	}
	switch n := m.rng.IntN(100); {
	case n < 5:
		next += 1 + m.rng.Int64N(20) // compacted away
	case n < 10:
		next++ // a transaction marker
	}
	m.log = append(m.log, next)
	m.truly = append(m.truly, false)
}

// read fetches a batch of records and hands them to the partition as accept does.
func (m *stateModel) read() {
	if m.p.win.InFlight() >= m.maxInFlight {
		return // paused
	}
	for range 1 + m.rng.IntN(8) {
		if m.readIdx == len(m.log) {
			m.extend()
		}
		i := m.readIdx
		m.readIdx++
		off := m.log[i]
		// (b): a restarted incarnation reads from its resumed watermark and skips exactly
		// the resumed Done set; everything else runs.
		if off < m.resumed.Watermark {
			m.fatalf("read %d below the resumed watermark %d", off, m.resumed.Watermark)
		}
		if m.p.skip.Contains(off) {
			if !m.resumed.Done.Contains(off) {
				m.fatalf("skip set holds %d, which the resumed state did not", off)
			}
			if !m.truly[i] {
				m.fatalf("skipping %d, which never completed", off)
			}
			if err := m.p.win.Skip(off); err != nil {
				m.fatalf("skip %d: %v", off, err)
			}
			m.skipped++
			continue
		}
		if m.resumed.Done.Contains(off) {
			m.fatalf("%d is done in the resumed state but runs again", off)
		}
		if err := m.p.win.Add(off); err != nil {
			m.fatalf("add %d: %v", off, err)
		}
		m.inFlight = append(m.inFlight, off)
		m.runs++
		if m.truly[i] {
			m.reruns++
		}
	}
	if m.p.win.InFlight() != len(m.inFlight) {
		m.fatalf("window has %d in flight, model %d", m.p.win.InFlight(), len(m.inFlight))
	}
}

// complete finishes a random record in flight.
func (m *stateModel) complete() {
	if len(m.inFlight) == 0 {
		return
	}
	k := m.rng.IntN(len(m.inFlight))
	off := m.inFlight[k]
	m.inFlight[k] = m.inFlight[len(m.inFlight)-1]
	m.inFlight = m.inFlight[:len(m.inFlight)-1]
	if !m.p.win.Done(off) {
		m.fatalf("Done(%d) of a record in flight reported false", off)
	}
	i, _ := m.index(off)
	m.truly[i] = true
	m.known[off] = struct{}{}
	if len(m.completed) < 32 {
		m.completed = append(m.completed, off)
	} else {
		m.completed[m.rng.IntN(len(m.completed))] = off
	}
}

// completeAgain delivers a result that must change nothing: a repeat of a completed
// record, or one for an offset in a gap, below the watermark, or not read yet.
func (m *stateModel) completeAgain() {
	var off int64
	switch n := m.rng.IntN(4); {
	case n == 0 && len(m.completed) > 0:
		off = m.completed[m.rng.IntN(len(m.completed))]
	case n == 1:
		off = m.p.win.Watermark() - 1 - m.rng.Int64N(10)
	default:
		off = m.p.win.Watermark() + m.rng.Int64N(int64(2*m.maxInFlight+20))
		for _, f := range m.inFlight {
			if f == off {
				return // a real result, not a repeat
			}
		}
	}
	wm, n := m.p.win.Watermark(), m.p.win.InFlight()
	if m.p.win.Done(off) {
		m.fatalf("Done(%d) of a record not in flight reported true", off)
	}
	if m.p.win.Watermark() != wm || m.p.win.InFlight() != n {
		m.fatalf("a repeated result for %d moved the window", off)
	}
}

// redeliver hands the partition a record below what it read, as a broker that reset the
// fetch position would: it must be refused and change nothing.
func (m *stateModel) redeliver() {
	if m.readIdx == 0 {
		return
	}
	off := m.log[m.rng.IntN(m.readIdx)]
	wm, n := m.p.win.Watermark(), m.p.win.InFlight()
	if err := m.p.win.Add(off); err == nil {
		m.fatalf("Add(%d) below the read position was accepted", off)
	}
	if m.p.win.Watermark() != wm || m.p.win.InFlight() != n {
		m.fatalf("a refused redelivery of %d moved the window", off)
	}
}

// checkpoint takes the partition's state, encodes and decodes it, checks it, and keeps it
// as the state a crash restarts from.
func (m *stateModel) checkpoint() {
	// The window's watermark is the oldest record in flight, or else the offset after
	// the last one read.
	winWant := m.resumed.Watermark
	if m.readIdx > m.firstIdx {
		winWant = m.log[m.readIdx-1] + 1
	}
	for _, off := range m.inFlight {
		winWant = min(winWant, off)
	}
	if got := m.p.win.Watermark(); got != winWant {
		m.fatalf("window watermark %d, want %d", got, winWant)
	}

	m.p.mu.Lock()
	st, ok := m.p.stateLocked()
	m.p.mu.Unlock()
	if !ok {
		if m.readIdx != 0 || m.resumed.Watermark >= 0 {
			m.fatalf("no state, though the start is known or a record was read")
		}
		return
	}
	m.checkpoints++

	// (d) The codec round-trips the state exactly.
	enc := checkpoint.EncodeState(st)
	dec, err := checkpoint.DecodeState(enc)
	if err != nil {
		m.fatalf("decode %d %s: %v", st.Watermark, st.Done.String(), err)
	}
	if dec.Watermark != st.Watermark || !slices.Equal(dec.Done.Ranges(), st.Done.Ranges()) {
		m.fatalf("round trip changed %d %s into %d %s", st.Watermark, st.Done.String(), dec.Watermark, dec.Done.String())
	}
	if again := checkpoint.EncodeState(dec); !slices.Equal(again, enc) {
		m.fatalf("re-encoding %d %s gave other bytes", st.Watermark, st.Done.String())
	}

	// (c) The watermark never moves backwards within an incarnation, nor below its start.
	if st.Watermark < m.lastWatermark {
		m.fatalf("watermark moved back from %d to %d", m.lastWatermark, st.Watermark)
	}
	m.lastWatermark = st.Watermark

	// (a) Nothing below the watermark is claimed done unless it truly completed.
	for m.trueLow < len(m.log) && m.truly[m.trueLow] {
		m.trueLow++
	}
	if st.Watermark > m.trueLowOffset() {
		m.fatalf("watermark %d is ahead of the first record not done, %d", st.Watermark, m.trueLowOffset())
	}
	// (a) Done is exactly what this incarnation knows completed above the watermark, and
	// each of those offsets is a record that truly completed.
	var want int64
	for off := range m.known {
		if off < st.Watermark {
			delete(m.known, off)
			continue
		}
		want++
		if !dec.Done.Contains(off) {
			m.fatalf("%d completed but the state above watermark %d forgot it: %s", off, st.Watermark, dec.Done.String())
		}
	}
	if got := dec.Done.Count(); got != want {
		m.fatalf("state claims %d done above watermark %d, the incarnation knows of %d: %s", got, st.Watermark, want, dec.Done.String())
	}
	for _, r := range dec.Done.Ranges() {
		for off := r.Start; off < r.End; off++ {
			if i, ok := m.index(off); !ok || !m.truly[i] {
				m.fatalf("state claims %d done, which exists=%t and never completed", off, ok)
			}
		}
	}

	m.last, m.haveLast = dec, true
	m.commits = append(m.commits, dec.Watermark)
}

// trueLowOffset is the first offset that may hold a record not completed.
func (m *stateModel) trueLowOffset() int64 {
	if m.trueLow < len(m.log) {
		return m.log[m.trueLow]
	}
	if len(m.log) == 0 {
		return 0
	}
	return m.log[len(m.log)-1] + 1
}

// crash drops the incarnation — its records in flight and its completions since the last
// checkpoint are lost — and restarts from the last checkpoint with a group commit that is
// absent or not ahead of it. Now and then the local checkpoint is lost too (a new node),
// and the group commit alone decides.
func (m *stateModel) crash() {
	committed := int64(-1)
	if len(m.commits) > 0 {
		switch m.rng.IntN(4) {
		case 0: // never committed to the group
		case 1: // the group commit is the latest checkpoint
			committed = m.commits[len(m.commits)-1]
		case 2: // it lags: one of the recent checkpoints
			committed = m.commits[max(0, len(m.commits)-1-m.rng.IntN(64))]
		default: // anything at or below the checkpoint is done (near it, so that a
			// restart from the group commit alone does not re-run most of the log)
			committed = max(0, m.last.Watermark-m.rng.Int64N(256))
		}
		// After a restart from the group commit alone, later checkpoints may be behind
		// older commits; the group commit is never ahead of the last checkpoint.
		committed = min(committed, m.last.Watermark)
	}
	haveLocal := m.haveLast
	switch n := m.rng.IntN(1000); {
	case n < 20: // a new node: the group commit alone decides
		haveLocal = false
		if committed < 0 && len(m.commits) > 0 {
			committed = m.commits[len(m.commits)-1]
		}
	case n < 21 && len(m.log) < 4096:
		// A new node, and the group's offsets expired: start from the earliest offset.
		// It re-runs the whole log, so only while the log is short.
		haveLocal, committed = false, -1
	}
	m.restart(m.last, haveLocal, committed)
}

// restart builds a fresh partition the way adjustOffsets does and positions the reader at
// its start, as the fetch from the adjusted offset does.
func (m *stateModel) restart(local checkpoint.State, haveLocal bool, committed int64) {
	m.restarts++
	start := int64(-1)
	var skip checkpoint.RangeSet
	if haveLocal || committed >= 0 {
		st := checkpoint.Resume(local, haveLocal, committed)
		start, skip = st.Watermark, st.Done
		// (c) and (b): never below the checkpoint nor the group commit; and since the group
		// commit is not ahead of the checkpoint, resuming changes nothing of it, so every
		// record run again is one the checkpoint did not cover.
		if start < committed {
			m.fatalf("restart at %d, below the group commit %d", start, committed)
		}
		if haveLocal {
			if start != local.Watermark || !slices.Equal(skip.Ranges(), local.Done.Ranges()) {
				m.fatalf("resuming %d %s with group commit %d gave %d %s", local.Watermark, local.Done.String(), committed, start, skip.String())
			}
		} else if !skip.IsEmpty() {
			m.fatalf("resuming from a group commit alone kept done offsets %s", skip.String())
		}
		for m.trueLow < len(m.log) && m.truly[m.trueLow] {
			m.trueLow++
		}
		if start > m.trueLowOffset() {
			m.fatalf("restart at %d, ahead of the first record not done, %d", start, m.trueLowOffset())
		}
	}
	m.resumed = checkpoint.State{Watermark: start, Done: skip.Clone()}
	m.p = &partition{win: newWindow(start), skip: skip}
	m.lastWatermark = max(start, 0)
	m.readIdx = 0
	if start >= 0 {
		m.readIdx, _ = m.index(start)
	}
	m.firstIdx = m.readIdx
	m.inFlight = m.inFlight[:0]
	m.completed = m.completed[:0]
	// The resumed Done set is known done from the start, read yet or not.
	m.known = map[int64]struct{}{}
	for _, r := range skip.Ranges() {
		for off := r.Start; off < r.End; off++ {
			m.known[off] = struct{}{}
		}
	}
	m.maxInFlight = []int{1, 4, 16, 64, 256}[m.rng.IntN(5)]
}
