package dlq

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
)

func entry(p, o int, function, origin string) *Entry {
	return &Entry{Pos: Pos{int32(p), int64(o)}, Function: function, Origin: origin, Value: []byte("v")}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	ledger := NewLedger("")
	ledger.Add(Pos{0, 1}, Mark{})
	dropped := entry(1, 0, "charge", "orders/0/9")
	dropped.Dropped = "value"
	selected := []*Entry{
		entry(1, 3, "charge", "orders/1/3"),
		entry(0, 2, "charge", "payments/0/2"),
		entry(0, 1, "charge", "orders/0/1"), // redriven already
		dropped,
	}
	p, err := NewPlan(selected, ledger, "", 0)
	require.NoError(t, err)
	require.Len(t, p.Items, 2)
	require.Equal(t, Pos{0, 2}, p.Items[0].Entry.Pos, "items are in position order")
	require.Equal(t, "payments", p.Items[0].Target, "each to the topic of its origin")
	require.Equal(t, "orders", p.Items[1].Target)
	require.Equal(t, 1, p.AlreadyRedriven)
	require.Equal(t, []Pos{{1, 0}}, p.ValueDropped, "a record without its value is never redriven")
	require.Equal(t, []string{"orders", "payments"}, p.Targets())
	require.Equal(t, Pos{1, 3}, selected[0].Pos, "the caller's slice is not reordered")

	p, err = NewPlan(selected, ledger, "kasync.fn.charge", 1)
	require.NoError(t, err)
	require.Len(t, p.Items, 1, "--limit")
	require.Equal(t, 2, p.Unlimited)
	require.Equal(t, "kasync.fn.charge", p.Items[0].Target)

	_, err = NewPlan([]*Entry{entry(0, 0, "charge", "broken")}, ledger, "", 0)
	require.True(t, errors.Is(err, ErrBadInput))
	require.Contains(t, err.Error(), "--to TOPIC")
	p, err = NewPlan([]*Entry{entry(0, 0, "charge", "broken")}, ledger, "orders", 0)
	require.NoError(t, err, "--to gives a record without an origin its target")
	require.Len(t, p.Items, 1)

	_, err = NewPlan([]*Entry{entry(0, 0, "charge", "a/0/0"), entry(0, 3, "refund", "a/0/1")}, ledger, "kasync.fn.charge", 0)
	require.True(t, errors.Is(err, ErrBadInput), "one --to topic for two functions")
	require.Contains(t, err.Error(), "--function")
	_, err = NewPlan([]*Entry{entry(0, 0, "charge", "a/0/0"), entry(0, 3, "refund", "b/0/1")}, ledger, "", 0)
	require.NoError(t, err, "each to its own source: no mix-up")
}

func TestRedriveRecord(t *testing.T) {
	t.Parallel()
	e := NewEntry(&kgo.Record{
		Partition: 2, Offset: 9, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{
			hdr("trace", "t1"),
			hdr(delaystreams.HeaderFunction, "charge"),
			hdr(delaystreams.HeaderAttempt, "5"),
			hdr(delaystreams.HeaderDue, "1"),
			hdr(delaystreams.HeaderOrigin, "orders/3/42"),
			hdr(delaystreams.HeaderFirstFailure, "1700000000000"),
			hdr(delaystreams.HeaderError, "boom"),
			hdr(delaystreams.HeaderReason, "exhausted"),
			hdr(delaystreams.HeaderPriority, "7"),
			hdr("content-type", "application/json"),
		},
	})
	rec := RedriveRecord(e, "kasync.dead-letter", "orders")
	require.Equal(t, "orders", rec.Topic)
	require.Equal(t, "k", string(rec.Key))
	require.Equal(t, "v", string(rec.Value))
	require.Equal(t, []kgo.RecordHeader{
		hdr("trace", "t1"),
		hdr(delaystreams.HeaderPriority, "7"),
		hdr("content-type", "application/json"),
		hdr(HeaderRedrivenFrom, "kasync.dead-letter/2/9"),
	}, rec.Headers)
	require.Zero(t, rec.Partition, "partitioned by key by the producer")
}

func TestNewest(t *testing.T) {
	t.Parallel()
	k := NewNewest(3)
	for i := range 10 {
		k.Add(&Entry{Pos: Pos{int32(i % 2), int64(i)}, Time: timeAt(i % 5)})
	}
	got := k.Entries()
	require.Len(t, got, 3)
	// Times 0..4 twice; the newest three are i=4 and i=9 (time 4) and, of i=3 and i=8
	// (time 3), the later position, 1/3.
	require.Equal(t, []Pos{{1, 3}, {0, 4}, {1, 9}}, []Pos{got[0].Pos, got[1].Pos, got[2].Pos})

	all := NewNewest(0)
	for i := range 5 {
		all.Add(&Entry{Pos: Pos{0, int64(i)}, Time: timeAt(5 - i)})
	}
	require.Len(t, all.Entries(), 5)
	require.Equal(t, Pos{0, 4}, all.Entries()[0].Pos, "oldest first")
}

func TestBatchSize(t *testing.T) {
	t.Parallel()
	require.Equal(t, maxBatch, batchSize(0))
	require.Equal(t, 1, batchSize(5))
	require.Equal(t, 5, batchSize(50))
	require.Equal(t, maxBatch, batchSize(1e6))
}
