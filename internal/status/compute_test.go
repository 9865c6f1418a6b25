package status

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestLag(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                  string
		committed, start, end int64
		from, lag             int64
	}{
		{"committed", 4, 0, 10, 4, 6},
		{"caught up", 10, 0, 10, 10, 0},
		{"no commit: from the log start", -1, 3, 10, 3, 7},
		{"commit below the log start (retention)", 1, 5, 10, 5, 5},
		{"commit past the end (topic recreated)", 20, 0, 10, 20, 0},
		{"empty", -1, 0, 0, 0, 0},
	} {
		require.Equal(t, c.from, ReadFrom(c.committed, c.start), c.name)
		require.Equal(t, c.lag, Lag(c.committed, c.start, c.end), c.name)
	}
}

func testLogs() Logs {
	return Logs{
		Start: Offsets{"src": {0: 0, 1: 2}, "r.30s": {0: 0, 1: 0}, "dlq": {0: 1, 1: 0}},
		End:   Offsets{"src": {0: 10, 1: 2}, "r.30s": {0: 5, 1: 3}, "dlq": {0: 4, 1: 2}},
	}
}

func TestNewTailer(t *testing.T) {
	t.Parallel()
	g := Group{Exists: true, State: "Stable", Members: 2, Committed: Offsets{"src": {0: 4}}}
	tl := NewTailer(TailerSpec{Name: "orders", Group: "kasync.orders", Topic: "src"}, g, testLogs())
	require.Equal(t, Tailer{Name: "orders", Group: "kasync.orders", State: "Stable", Members: 2, Lag: 6,
		Partitions: []TailerPartition{
			{Topic: "src", Partition: 0, Committed: 4, LogStart: 0, LogEnd: 10, Lag: 6},
			{Topic: "src", Partition: 1, Committed: -1, LogStart: 2, LogEnd: 2, Lag: 0, LagSeconds: new(0.0)},
		}}, tl, "the lagging partition's age is unknown until peeked, so is the tailer's")

	tl = NewTailer(TailerSpec{Name: "gone", Group: "kasync.gone", Topic: "missing"}, Group{Err: errors.New("boom")}, testLogs())
	require.Equal(t, StateNoGroup, tl.State)
	require.Empty(t, tl.Partitions)
	require.Equal(t, "boom; topic missing does not exist", tl.Error)
	require.Equal(t, 0.0, *tl.MaxLagSeconds)

	// Without a configured topic: the topics committed to and assigned.
	g = Group{Exists: true, State: "Empty", Committed: Offsets{"src": {1: 2}}, Assigned: []string{"dlq"}}
	tl = NewTailer(TailerSpec{Group: "g"}, g, testLogs())
	require.Len(t, tl.Partitions, 4)
	require.Equal(t, []string{"dlq", "src"}, g.Topics())
	require.Equal(t, int64(3+2+10), tl.Lag)
}

func TestNewRungAndDeadLetter(t *testing.T) {
	t.Parallel()
	r := NewRung(RungSpec{Topic: "r.30s", Delay: 30 * time.Second}, Group{Exists: true, State: "Stable", Committed: Offsets{"r.30s": {0: 5}}}, testLogs())
	require.Equal(t, "30s", r.Delay)
	require.Equal(t, "r.30s", r.Group)
	require.Equal(t, int64(3), r.Waiting)
	require.Equal(t, []RungPartition{
		{Partition: 0, Committed: 5, LogStart: 0, LogEnd: 5, Waiting: 0},
		{Partition: 1, Committed: -1, LogStart: 0, LogEnd: 3, Waiting: 3},
	}, r.Partitions)
	require.Nil(t, r.OldestDue)

	r = NewRung(RungSpec{Topic: "r.1m"}, Group{}, testLogs())
	require.Contains(t, r.Error, "topic r.1m does not exist")
	require.Equal(t, StateNoGroup, r.State)

	d := NewDeadLetter("dlq", testLogs())
	require.Equal(t, int64(3+2), d.Records)
	require.Equal(t, []DeadLetterPartition{{0, 1, 4, 3}, {1, 0, 2, 2}}, d.Partitions)
	require.Contains(t, NewDeadLetter("nope", testLogs()).Error, "does not exist")
}

func TestApplyPeeks(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	logs := testLogs()
	r := &Report{Time: now,
		Tailers: []Tailer{
			NewTailer(TailerSpec{Group: "a", Topic: "src"}, Group{Exists: true, Committed: Offsets{"src": {0: 4}}}, logs),
			// Same partition, another offset: a second target.
			NewTailer(TailerSpec{Group: "b", Topic: "src"}, Group{Exists: true, Committed: Offsets{"src": {0: 7}}}, logs),
			// Same partition and offset as a: one target for both.
			NewTailer(TailerSpec{Group: "c", Topic: "src"}, Group{Exists: true, Committed: Offsets{"src": {0: 4}}}, logs),
		},
		Rungs: []Rung{NewRung(RungSpec{Topic: "r.30s"}, Group{Exists: true, Committed: Offsets{"r.30s": {0: 2}}}, logs)},
	}
	require.Equal(t, []PeekTarget{{"r.30s", 0, 2}, {"r.30s", 1, 0}, {"src", 0, 4}, {"src", 0, 7}}, r.PeekTargets())

	r.ApplyPeeks(map[PeekTarget]Peeked{
		{"src", 0, 4}:   {Timestamp: now.Add(-90 * time.Second)},
		{"src", 0, 7}:   {Timestamp: now.Add(time.Minute)}, // another clock, ahead
		{"r.30s", 0, 2}: {Due: now.Add(-3 * time.Second)},
		{"r.30s", 1, 0}: {Due: now.Add(-5 * time.Second)},
	})
	require.Equal(t, 90.0, *r.Tailers[0].Partitions[0].LagSeconds)
	require.Equal(t, 90.0, *r.Tailers[0].MaxLagSeconds)
	require.Equal(t, 0.0, *r.Tailers[1].Partitions[0].LagSeconds, "an age is never negative")
	require.Equal(t, 90.0, *r.Tailers[2].MaxLagSeconds)
	rung := r.Rungs[0]
	require.Equal(t, now.Add(-5*time.Second), *rung.OldestDue)
	require.Equal(t, 5.0, *rung.LatenessSeconds)
	require.Equal(t, int64(3+3), rung.Waiting)

	// A missing peek, or a head without a due time: unknown, and so are the totals.
	r.ApplyPeeks(map[PeekTarget]Peeked{{"r.30s", 0, 2}: {Due: now.Add(time.Hour)}, {"r.30s", 1, 0}: {Timestamp: now}})
	require.Nil(t, r.Tailers[0].Partitions[0].LagSeconds)
	require.Nil(t, r.Tailers[0].MaxLagSeconds)
	require.Nil(t, r.Rungs[0].OldestDue)
	require.Nil(t, r.Rungs[0].LatenessSeconds)

	// Due in the future: not late.
	r.Rungs[0].Partitions = r.Rungs[0].Partitions[:1]
	r.ApplyPeeks(map[PeekTarget]Peeked{{"r.30s", 0, 2}: {Due: now.Add(time.Hour)}})
	require.Equal(t, 0.0, *r.Rungs[0].LatenessSeconds)
}

// TestRungApplyPeeks: one rung on its own, as a node computes it from the offsets it
// lists: the heads of the partitions with records waiting are the targets; the oldest
// due is the earliest of their kasync-due times, unknown when any is; lateness is
// never negative; nothing waiting is no oldest due.
func TestRungApplyPeeks(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rung := func() Rung {
		return Rung{Topic: "r.1m", Partitions: []RungPartition{
			{Partition: 0, Committed: 7, LogStart: 0, LogEnd: 9, Waiting: 2},
			{Partition: 1, Committed: -1, LogStart: 3, LogEnd: 3, Waiting: 0},
			{Partition: 2, Committed: 1, LogStart: 4, LogEnd: 5, Waiting: 1}, // retention took the commit
		}}
	}
	r := rung()
	require.Equal(t, []PeekTarget{{"r.1m", 0, 7}, {"r.1m", 2, 4}}, r.PeekTargets())

	r.ApplyPeeks(map[PeekTarget]Peeked{{"r.1m", 0, 7}: {Due: now.Add(-1500 * time.Millisecond)}, {"r.1m", 2, 4}: {Due: now.Add(time.Second)}}, now)
	require.Equal(t, int64(3), r.Waiting)
	require.Equal(t, now.Add(-1500*time.Millisecond), *r.OldestDue)
	require.Equal(t, time.UTC, r.OldestDue.Location())
	require.Equal(t, 1.5, *r.LatenessSeconds)
	require.Nil(t, r.Partitions[1].Due, "nothing waits there")

	r = rung()
	r.ApplyPeeks(map[PeekTarget]Peeked{{"r.1m", 0, 7}: {Due: now.Add(time.Minute)}, {"r.1m", 2, 4}: {Due: now.Add(time.Hour)}}, now)
	require.Equal(t, now.Add(time.Minute), *r.OldestDue)
	require.Equal(t, 0.0, *r.LatenessSeconds, "not due yet: not late")

	r = rung()
	r.ApplyPeeks(map[PeekTarget]Peeked{{"r.1m", 2, 4}: {Due: now.Add(-time.Hour)}}, now)
	require.Nil(t, r.OldestDue, "partition 0's head was not read: its due time might be the earliest")
	require.Nil(t, r.LatenessSeconds)

	r = Rung{Topic: "r.1m", Partitions: []RungPartition{{Partition: 0, Committed: 9, LogEnd: 9}}}
	require.Empty(t, r.PeekTargets())
	r.ApplyPeeks(nil, now)
	require.Nil(t, r.OldestDue, "nothing waits: no oldest due")
	require.Nil(t, r.LatenessSeconds)
}

func TestLooksLikeKasync(t *testing.T) {
	t.Parallel()
	rungs := map[string]bool{"kasync.delay.30s": true}
	require.True(t, LooksLikeKasync("kasync.orders", nil, rungs))
	require.True(t, LooksLikeKasync("billing", []string{"x", "kasync.fn.charge"}, rungs))
	require.False(t, LooksLikeKasync("billing", []string{"orders"}, rungs))
	require.False(t, LooksLikeKasync("kasync.delay.30s", []string{"kasync.delay.30s"}, rungs), "a rung group is a rung")
}

// TestIsIngest: a group is an ingest tailer's when named after an ingest topic, as a
// node names it, or when every topic it committed to is one.
func TestIsIngest(t *testing.T) {
	t.Parallel()
	require.True(t, IsIngest("kasync.fn.charge", nil))
	require.True(t, IsIngest("billing", []string{"kasync.fn.charge", "kasync.fn.refund"}))
	require.False(t, IsIngest("billing", []string{"kasync.fn.charge", "orders"}), "it reads a source topic too")
	require.False(t, IsIngest("kasync.orders", nil))
	require.False(t, IsIngest("kasync.orders", []string{"orders"}))
	require.Equal(t, TailerSpec{Name: "kasync.fn.charge", Group: "kasync.fn.charge", Topic: "kasync.fn.charge", Ingest: true},
		IngestSpec("kasync.fn.charge"))
}

func TestFindRungs(t *testing.T) {
	t.Parallel()
	topics := []string{"kasync.delay.5m", "kasync.delay.30s", "kasync.delay.1m0s", "kasync.delay.x",
		"kasync.delay.-1s", "kasync.delayed.1m", "orders", "kasync.delay.1h30m", "kasync.delay.250ms"}
	var got []string
	for _, r := range FindRungs("kasync.delay", topics) {
		got = append(got, r.Topic)
	}
	require.Equal(t, []string{"kasync.delay.250ms", "kasync.delay.30s", "kasync.delay.5m", "kasync.delay.1h30m"}, got,
		"only names kasync gives rungs, by delay; 1m0s is not how kasync writes 1m")
}

func TestPeekRounds(t *testing.T) {
	t.Parallel()
	rounds := peekRounds([]PeekTarget{{"a", 0, 1}, {"a", 0, 5}, {"a", 1, 1}, {"a", 0, 9}})
	require.Len(t, rounds, 3)
	require.Len(t, rounds[0], 2)
	require.Equal(t, PeekTarget{"a", 0, 9}, rounds[2][topicPartition{"a", 0}])
}

func TestDueOf(t *testing.T) {
	t.Parallel()
	h := func(v string) kgo.RecordHeader { return kgo.RecordHeader{Key: "kasync-due", Value: []byte(v)} }
	require.Equal(t, time.UnixMilli(1700000000123), dueOf([]kgo.RecordHeader{h("1"), {Key: "x"}, h("1700000000123")}), "the last wins")
	require.True(t, dueOf(nil).IsZero())
	require.True(t, dueOf([]kgo.RecordHeader{h("soon")}).IsZero())
	require.True(t, dueOf([]kgo.RecordHeader{h("-5")}).IsZero())
}
