package delaystreams

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func headerMap(r *kgo.Record) map[string][]string {
	m := map[string][]string{}
	for _, h := range r.Headers {
		m[h.Key] = append(m[h.Key], string(h.Value))
	}
	return m
}

func TestDeadLetterRecord(t *testing.T) {
	t.Parallel()
	first := time.UnixMilli(1_700_000_000_123)
	rt := testRouter(t, map[string]RetryPolicy{"charge": {MaxAttempts: 5, Backoff: []time.Duration{time.Minute}}}, 0)
	src := &kgo.Record{
		Topic: "orders", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{
			{Key: "trace", Value: []byte("t1")},
			{Key: HeaderAttempt, Value: []byte("-1")},  // forged
			{Key: HeaderReason, Value: []byte("none")}, // forged
		},
	}
	f := &Failure{Record: src, Function: "charge", Attempt: 5, FirstFailure: first,
		Outcome: scheduler.Retriable(scheduler.ReasonError, strings.Repeat("é", 2000))}
	d := rt.Decide(f)
	require.True(t, d.DeadLetter)
	rec := rt.Record(f, d)
	require.Equal(t, "dlq", rec.Topic)
	require.Equal(t, "k", string(rec.Key), "the key is kept, so the partitioning is too")
	require.Equal(t, "v", string(rec.Value))
	h := headerMap(rec)
	require.Equal(t, []string{"t1"}, h["trace"], "the record's own headers are kept")
	require.Equal(t, []string{"charge"}, h[HeaderFunction])
	require.Equal(t, []string{"5"}, h[HeaderAttempt], "forged kasync headers are replaced, not duplicated")
	require.Equal(t, []string{"exhausted"}, h[HeaderReason])
	require.Equal(t, []string{"orders/3/42"}, h[HeaderOrigin])
	require.Equal(t, []string{"1700000000123"}, h[HeaderFirstFailure])
	require.Empty(t, h[HeaderDue], "a dead letter is not due")
	require.Len(t, h[HeaderError], 1)
	require.LessOrEqual(t, len(h[HeaderError][0]), MaxErrorBytes)
	require.True(t, utf8.ValidString(h[HeaderError][0]), "truncation never splits a character")
}

func TestParseOrigin(t *testing.T) {
	t.Parallel()
	o, err := ParseOrigin("my.topic-1/7/123")
	require.NoError(t, err)
	require.Equal(t, Origin{Topic: "my.topic-1", Partition: 7, Offset: 123}, o)
	require.Equal(t, "my.topic-1/7/123", o.String())
	for _, bad := range []string{"", "a", "a/1", "/1/2", "a/x/2", "a/1/y", "a/-1/2", "a/1/-2", "a/99999999999/1"} {
		_, err := ParseOrigin(bad)
		require.Error(t, err, "%q", bad)
	}
}

func FuzzParseOrigin(f *testing.F) {
	for _, s := range []string{"t/0/0", "a.b/12/345", "", "//", "a/1/2/3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOrigin(s)
		if err != nil {
			return
		}
		back, err := ParseOrigin(o.String())
		if err != nil || back != o {
			t.Fatalf("ParseOrigin(%q) = %+v, which does not round-trip: %+v, %v", s, o, back, err)
		}
	})
}

// TestConfigAgreesWithLadder: `kasync config check` must refuse exactly the ladders that
// NewLadder refuses, and name rung topics exactly as RungTopic does.
func TestConfigAgreesWithLadder(t *testing.T) {
	t.Parallel()
	require.Equal(t, MaxRungs, config.MaxRungs)
	for _, d := range []time.Duration{30 * time.Second, time.Minute, 90 * time.Minute, time.Hour + 30*time.Second, 250 * time.Microsecond} {
		require.Equal(t, config.Delay{TopicPrefix: "p"}.RungTopic(config.Duration(d)), RungTopic("p", d))
	}
}

// TestTooLargeIsNeverStuck: a rung record the rung topic refuses as too large goes to
// the dead letter with reason too-large; a dead letter the dead-letter topic refuses is
// written without its value, then also without the source's headers, marked with
// kasync-dropped; a record that fits is written whole. None is left failing for ever.
func TestTooLargeIsNeverStuck(t *testing.T) {
	t.Parallel()
	const limit = 2048
	brokers := kafkatest.Brokers(t)
	prefix := kafkatest.TopicName(t)
	rung := 50 * time.Millisecond
	dlq := prefix + "-dlq"
	adm := kafkatest.Admin(t, brokers)
	maxBytes := strconv.Itoa(limit)
	for _, topic := range []string{RungTopic(prefix, rung), dlq} {
		_, err := adm.CreateTopic(context.Background(), 1, -1, map[string]*string{"max.message.bytes": &maxBytes}, topic)
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), topic) })
	}
	// The producer's batches must fit the topics' limit, as an operator would set them.
	cl := kafkatest.Client(t, brokers, kgo.ProducerBatchMaxBytes(limit), kgo.RecordDeliveryTimeout(10*time.Second))
	reg := prometheus.NewRegistry()
	rt, err := NewRouter(cl, RouterConfig{Ladder: mustLadder(t, []time.Duration{rung}, 0), TopicPrefix: prefix, DeadLetter: dlq,
		Policies: map[string]RetryPolicy{"fn": {MaxAttempts: 3, Backoff: []time.Duration{rung}}}, Registerer: reg})
	require.NoError(t, err)

	big := strings.Repeat("v", 3*limit)
	var manyHeaders []kgo.RecordHeader
	for i := range 40 {
		manyHeaders = append(manyHeaders, kgo.RecordHeader{Key: "h" + strconv.Itoa(i), Value: []byte(strings.Repeat("x", 100))})
	}
	src := func(off int64, value string, headers []kgo.RecordHeader) *kgo.Record {
		return &kgo.Record{Topic: "orders", Partition: 0, Offset: off, Key: []byte("k"), Value: []byte(value), Headers: headers}
	}
	fatal := scheduler.Fatal(scheduler.ReasonFatal, "e")
	retry := scheduler.Retriable(scheduler.ReasonError, "e")
	fs := []Failure{
		{Record: src(1, "small", nil), Function: "fn", Attempt: 1, Outcome: fatal},
		{Record: src(2, big, nil), Function: "fn", Attempt: 1, Outcome: fatal},
		{Record: src(3, big, manyHeaders), Function: "fn", Attempt: 1, Outcome: fatal},
		{Record: src(4, "small", nil), Function: "fn", Attempt: 1, Outcome: retry},
		{Record: src(5, big, nil), Function: "fn", Attempt: 1, Outcome: retry},
	}
	_, errs := rt.Route(context.Background(), fs)
	for i, err := range errs {
		require.NoError(t, err, "failure %d", i)
	}
	require.Equal(t, map[string]float64{"function=fn,reason=fatal": 3, "function=fn,reason=too-large": 1}, deadLetterCounts(t, reg),
		"a dead letter is counted once, as what was finally acknowledged: trimmed, or a rung record turned too-large")

	got := map[string]*kgo.Record{}
	reader := kafkatest.Client(t, brokers, kgo.ConsumeTopics(dlq, RungTopic(prefix, rung)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(got) < len(fs) && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got[headerMap(r)[HeaderOrigin][0]] = r
		})
	}
	require.Len(t, got, len(fs))
	whole := got["orders/0/1"]
	require.Equal(t, dlq, whole.Topic)
	require.Equal(t, "small", string(whole.Value))
	require.Empty(t, headerMap(whole)[HeaderDropped])

	noValue := got["orders/0/2"]
	require.Empty(t, noValue.Value)
	require.Equal(t, []string{"value"}, headerMap(noValue)[HeaderDropped])
	require.Equal(t, []string{"fatal"}, headerMap(noValue)[HeaderReason])

	bare := got["orders/0/3"]
	require.Empty(t, bare.Value)
	require.Equal(t, []string{"value,headers"}, headerMap(bare)[HeaderDropped])
	require.Empty(t, headerMap(bare)["h0"], "the source's headers were left out")
	require.Equal(t, []string{"fn"}, headerMap(bare)[HeaderFunction], "kasync's headers are kept")

	delayed := got["orders/0/4"]
	require.Equal(t, RungTopic(prefix, rung), delayed.Topic, "a retry that fits waits on its rung")

	tooBig := got["orders/0/5"]
	require.Equal(t, dlq, tooBig.Topic, "a retry too large for its rung is dead-lettered, not stuck")
	h := headerMap(tooBig)
	require.Equal(t, []string{string(scheduler.ReasonTooLarge)}, h[HeaderReason])
	require.Empty(t, h[HeaderDue])
	require.Equal(t, []string{"value"}, h[HeaderDropped])
	require.Contains(t, h[HeaderError][0], "too large for delay rung topic")
}
