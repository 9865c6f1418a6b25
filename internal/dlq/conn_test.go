package dlq_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/dlq"
	"github.com/kasync/kasync/internal/dlq/dlqtest"
	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/kafkatest"
)

type bundle struct {
	brokers []string
	topic   string // the dead-letter topic
	conn    *dlq.Conn
}

// setup starts a broker (or uses KASYNC_TEST_BROKERS) with a dead-letter topic of 3
// partitions and opens a Conn to it.
func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{brokers: kafkatest.Brokers(t)}
	b.topic = kafkatest.NewTopic(t, b.brokers, 3)
	conn, err := dlq.Open(t.Context(), kafka.ClientConfig{Brokers: b.brokers}, b.topic)
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	b.conn = conn
	return b
}

func letters(n int, function, origin string) []dlqtest.Letter {
	out := make([]dlqtest.Letter, n)
	for i := range out {
		out[i] = dlqtest.Letter{Function: function, Error: "boom",
			Origin: delaystreams.Origin{Topic: origin, Partition: 0, Offset: int64(i)},
			Key:    fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: fmt.Appendf(nil, "t%d", i)}}}
	}
	return out
}

func scanAll(t *testing.T, conn *dlq.Conn) []*dlq.Entry {
	t.Helper()
	var out []*dlq.Entry
	require.NoError(t, conn.Scan(t.Context(), func(e *dlq.Entry) error { out = append(out, e); return nil }))
	return out
}

// TestScanStopsAtTheEndAsOfTheStart: a scan reads every record there was when it began,
// once, and not those written while it runs.
func TestScanStopsAtTheEndAsOfTheStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Empty(t, scanAll(t, b.conn), "an empty topic reads nothing, and returns")
	dlqtest.Write(t, b.brokers, b.topic, letters(30, "charge", "orders")...)
	seen := map[dlq.Pos]bool{}
	wroteMore := false
	require.NoError(t, b.conn.Scan(t.Context(), func(e *dlq.Entry) error {
		if !wroteMore {
			wroteMore = true
			dlqtest.Write(t, b.brokers, b.topic, letters(5, "late", "orders")...)
		}
		require.False(t, seen[e.Pos], "read twice: %s", e.Pos)
		seen[e.Pos] = true
		require.Equal(t, "charge", e.Function, "written after the scan began")
		return nil
	}))
	require.Len(t, seen, 30)
	require.Len(t, scanAll(t, b.conn), 35)
}

// TestTailReadsTheLatest: Tail reads the last n records of each partition, no more,
// and nothing of an empty topic.
func TestTailReadsTheLatest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tail := func(n int) []*dlq.Entry {
		var out []*dlq.Entry
		require.NoError(t, b.conn.Tail(t.Context(), n, func(e *dlq.Entry) error { out = append(out, e); return nil }))
		return out
	}
	require.Empty(t, tail(5), "an empty topic reads nothing, and returns")
	dlqtest.Write(t, b.brokers, b.topic, letters(30, "charge", "orders")...)
	all := scanAll(t, b.conn)
	last := map[int32]int64{} // partition → its last offset
	for _, e := range all {
		last[e.Partition] = max(last[e.Partition], e.Offset)
	}
	got := tail(2)
	want := 0
	for _, off := range last {
		want += int(min(off+1, 2))
	}
	require.Len(t, got, want, "two per partition (fewer where a partition holds fewer)")
	for _, e := range got {
		require.GreaterOrEqual(t, e.Offset, last[e.Partition]-1, "%s is among its partition's last two", e.Pos)
		require.Equal(t, "charge", e.Function)
		require.Equal(t, "boom", e.Error)
	}
	require.Len(t, tail(1000), 30, "n beyond the topic reads it all")
	require.Empty(t, tail(0))
}

func TestOpenMissingTopic(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	_, err := dlq.Open(t.Context(), kafka.ClientConfig{Brokers: brokers}, "no-such-dead-letter")
	require.True(t, errors.Is(err, dlq.ErrBadInput), "%v", err)
	require.Contains(t, err.Error(), "does not exist")
}

func TestGet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dlqtest.Write(t, b.brokers, b.topic, letters(10, "charge", "orders")...)
	all := scanAll(t, b.conn)
	want := all[len(all)-1]
	got, err := b.conn.Get(t.Context(), want.Pos)
	require.NoError(t, err)
	require.Equal(t, want.Pos, got.Pos)
	require.Equal(t, want.Value, got.Value)
	require.Equal(t, want.Headers, got.Headers)

	for _, c := range []struct {
		pos  dlq.Pos
		want string
	}{
		{dlq.Pos{Partition: 3, Offset: 0}, "partition 3 does not exist; " + b.topic + " has partitions 0 to 2"},
		{dlq.Pos{Partition: want.Partition, Offset: 1000}, "offset 1000 is not in partition"},
	} {
		_, err := b.conn.Get(t.Context(), c.pos)
		require.True(t, errors.Is(err, dlq.ErrBadInput), "%v", err)
		require.Contains(t, err.Error(), c.want)
	}
}

// TestRedriveOnceThenNothing: every planned record is produced once, with its key,
// value and own headers, marked only once acknowledged; the ledger read again makes a
// second plan of the same selection empty.
func TestRedriveOnceThenNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	target := kafkatest.NewTopic(t, b.brokers, 2)
	dlqtest.Write(t, b.brokers, b.topic, letters(25, "charge", target)...)
	ledger, exists, err := b.conn.ReadLedger(t.Context())
	require.NoError(t, err)
	require.False(t, exists)
	plan, err := dlq.NewPlan(scanAll(t, b.conn), ledger, "", 0)
	require.NoError(t, err)
	require.Len(t, plan.Items, 25)
	require.NoError(t, b.conn.CheckTargets(t.Context(), plan, ""))
	require.NoError(t, b.conn.EnsureLedger(t.Context()))
	var progress []int
	n, err := b.conn.Redrive(t.Context(), plan, ledger, dlq.RedriveOptions{Progress: func(d int) { progress = append(progress, d) }})
	require.NoError(t, err)
	require.Equal(t, 25, n)
	require.Equal(t, 25, progress[len(progress)-1])
	require.Equal(t, 25, ledger.Len())

	got := map[string]*kgo.Record{}
	for _, r := range dlqtest.ReadAll(t, b.brokers, target) {
		got[string(r.Key)] = r
	}
	require.Len(t, got, 25, "each once")
	for i := range 25 {
		r := got[fmt.Sprintf("k%d", i)]
		require.NotNil(t, r, "k%d", i)
		require.Equal(t, fmt.Sprintf("v%d", i), string(r.Value))
		require.Len(t, r.Headers, 2)
		require.Equal(t, kgo.RecordHeader{Key: "trace", Value: fmt.Appendf(nil, "t%d", i)}, r.Headers[0])
		require.Equal(t, dlq.HeaderRedrivenFrom, r.Headers[1].Key)
	}

	again, exists, err := b.conn.ReadLedger(t.Context())
	require.NoError(t, err)
	require.True(t, exists)
	require.Equal(t, 25, again.Len(), "the ledger topic holds every mark")
	plan, err = dlq.NewPlan(scanAll(t, b.conn), again, "", 0)
	require.NoError(t, err)
	require.Empty(t, plan.Items)
	require.Equal(t, 25, plan.AlreadyRedriven)
}

// TestRedriveRate: at 50 records/s, 20 records take at least the 300ms their tokens
// beyond the first batch's need (a lower bound: no assertion on how slow).
func TestRedriveRate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	target := kafkatest.NewTopic(t, b.brokers, 1)
	dlqtest.Write(t, b.brokers, b.topic, letters(20, "charge", target)...)
	ledger := dlq.NewLedger("")
	plan, err := dlq.NewPlan(scanAll(t, b.conn), ledger, "", 0)
	require.NoError(t, err)
	require.NoError(t, b.conn.EnsureLedger(t.Context()))
	start := time.Now()
	n, err := b.conn.Redrive(t.Context(), plan, ledger, dlq.RedriveOptions{Rate: 50})
	require.NoError(t, err)
	require.Equal(t, 20, n)
	require.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond)
}

func TestCheckTargetsMissing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dlqtest.Write(t, b.brokers, b.topic, letters(3, "charge", "gone-topic")...)
	plan, err := dlq.NewPlan(scanAll(t, b.conn), dlq.NewLedger(""), "", 0)
	require.NoError(t, err)
	err = b.conn.CheckTargets(t.Context(), plan, "")
	require.True(t, errors.Is(err, dlq.ErrBadInput), "%v", err)
	require.Contains(t, err.Error(), "source topic gone-topic")
	require.Contains(t, err.Error(), "--to TOPIC")
}

func TestEnsureLedgerIsCompacted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, b.conn.EnsureLedger(t.Context()))
	require.NoError(t, b.conn.EnsureLedger(t.Context()), "an existing ledger is fine")
	cfgs, err := kafkatest.Admin(t, b.brokers).DescribeTopicConfigs(t.Context(), b.conn.Ledger())
	require.NoError(t, err)
	rc, err := cfgs.On(b.conn.Ledger(), nil)
	require.NoError(t, err)
	policy := ""
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil {
			policy = *c.Value
		}
	}
	require.Equal(t, "compact", policy)
}
