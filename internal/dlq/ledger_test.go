package dlq

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLedger(t *testing.T) {
	t.Parallel()
	l := NewLedger("id-1")
	mark := func(p Pos, id string) []byte {
		return MarkRecord("dlq.redriven", p, Mark{To: "orders/0/1", At: 1, DeadLetterTopicID: id}).Value
	}
	require.NoError(t, l.Apply([]byte("0/5"), mark(Pos{0, 5}, "id-1")))
	require.NoError(t, l.Apply([]byte("1/7"), mark(Pos{1, 7}, "")), "a mark without an ID is taken")
	require.NoError(t, l.Apply([]byte("2/9"), mark(Pos{2, 9}, "id-0")), "a mark of another incarnation is ignored")
	require.True(t, l.Has(Pos{0, 5}))
	require.True(t, l.Has(Pos{1, 7}))
	require.False(t, l.Has(Pos{2, 9}))
	require.Equal(t, 1, l.Stale())
	require.Equal(t, 2, l.Len())

	require.NoError(t, l.Apply([]byte("0/5"), nil), "a tombstone lets the record be redriven again")
	require.False(t, l.Has(Pos{0, 5}))

	require.Error(t, l.Apply([]byte("x"), mark(Pos{}, "")))
	require.Error(t, l.Apply([]byte("3/3"), []byte("not json")))
	require.False(t, l.Has(Pos{3, 3}))

	m := l.NewMark("orders/1/2", time.UnixMilli(42))
	require.Equal(t, Mark{To: "orders/1/2", At: 42, DeadLetterTopicID: "id-1"}, m)
	rec := MarkRecord("dlq.redriven", Pos{4, 4}, m)
	require.Equal(t, "dlq.redriven", rec.Topic)
	require.Equal(t, "4/4", string(rec.Key))
	require.NoError(t, l.Apply(rec.Key, rec.Value))
	got, ok := l.Get(Pos{4, 4})
	require.True(t, ok)
	require.Equal(t, m, got)

	var none *Ledger
	require.False(t, none.Has(Pos{0, 0}), "a nil ledger holds nothing")
	require.Equal(t, "kasync.dead-letter.redriven", LedgerTopic("kasync.dead-letter"))
}
