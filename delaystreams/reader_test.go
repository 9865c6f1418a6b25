package delaystreams

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// TestPriorityTravelsThroughTheLadder: a source record's kasync-priority header (or the
// tailer's priority) becomes the workload's priority; a retry's rung record carries it,
// and the rung reader gives it back to the next attempt. A header that is not a 32-bit
// integer is ignored.
func TestPriorityTravelsThroughTheLadder(t *testing.T) {
	t.Parallel()
	rt := testRouter(t, map[string]RetryPolicy{"charge": {MaxAttempts: 3, Backoff: []time.Duration{time.Minute}}}, 0)
	src, err := NewSourceReader(rt, "charge", 3)
	require.NoError(t, err)
	rec := func(headers ...kgo.RecordHeader) *kgo.Record {
		return &kgo.Record{Topic: "orders", Partition: 1, Offset: 7, Value: []byte("v"), Headers: headers, Timestamp: testNow}
	}
	for _, tc := range []struct {
		name    string
		headers []kgo.RecordHeader
		want    int32
	}{
		{"tailer default", nil, 3},
		{"header", []kgo.RecordHeader{{Key: HeaderPriority, Value: []byte("-12")}}, -12},
		{"last header wins", []kgo.RecordHeader{{Key: HeaderPriority, Value: []byte("1")}, {Key: HeaderPriority, Value: []byte("9")}}, 9},
		{"garbage", []kgo.RecordHeader{{Key: HeaderPriority, Value: []byte("high")}}, 3},
		{"out of range", []kgo.RecordHeader{{Key: HeaderPriority, Value: []byte(strconv.Itoa(1 << 40))}}, 3},
	} {
		step := src.Next(rec(tc.headers...), testNow)
		require.Equal(t, tailer.ActionRun, step.Action, tc.name)
		require.Equal(t, tc.want, step.Workload.Priority, tc.name)
		require.Equal(t, "kafka://orders", step.Workload.Source, tc.name)

		// The attempt fails: its rung record carries the priority...
		failed := src.Failed(&tailer.Failure{Record: rec(tc.headers...), Workload: &step.Workload,
			Outcome: scheduler.Retriable(scheduler.ReasonError, "e"), FirstFailure: testNow})
		require.Equal(t, tailer.ToRung, failed.To, tc.name)
		require.Equal(t, []string{strconv.Itoa(int(tc.want))}, headerMap(failed.Record)[HeaderPriority], tc.name)

		// ...and the rung reader, once the record is due, runs it with the same priority.
		rung, err := NewRungReader(rt, 1, nil) // 1m: the rung Decide chose
		require.NoError(t, err)
		due := failed.Record
		due.Topic, due.Timestamp = rung.Topic(), testNow
		again := rung.Next(due, testNow.Add(2*time.Minute))
		require.Equal(t, tailer.ActionRun, again.Action, tc.name)
		require.Equal(t, 2, again.Workload.Attempt, tc.name)
		require.Equal(t, tc.want, again.Workload.Priority, tc.name)
		require.Equal(t, "orders/1/7", again.Workload.ID, tc.name)
		require.Equal(t, "kafka://orders", again.Workload.Source, tc.name, "the origin's topic, not the rung's")
	}
}

func TestParseMetaPriority(t *testing.T) {
	t.Parallel()
	base := []kgo.RecordHeader{{Key: HeaderFunction, Value: []byte("f")}, {Key: HeaderOrigin, Value: []byte("t/0/1")}}
	m, fixed, err := ParseMeta(append(base, kgo.RecordHeader{Key: HeaderPriority, Value: []byte("42")}), testNow, time.Hour)
	require.NoError(t, err)
	require.Equal(t, int32(42), m.Priority)
	require.NotContains(t, fixed, HeaderPriority)

	m, fixed, err = ParseMeta(append(base, kgo.RecordHeader{Key: HeaderPriority, Value: []byte("x")}), testNow, time.Hour)
	require.NoError(t, err)
	require.Zero(t, m.Priority)
	require.Contains(t, fixed, `kasync-priority "x" is not a 32-bit integer; taken as 0`)
}

// An ordered source reader retries in place: the next attempt, at the policy's due
// time; exhausted and fatal attempts still go to the dead letter.
func TestOrderedSourceReaderRetriesInPlace(t *testing.T) {
	t.Parallel()
	rt := testRouter(t, map[string]RetryPolicy{"charge": {MaxAttempts: 3, Backoff: []time.Duration{time.Minute}}}, 0)
	src, err := NewOrderedSourceReader(rt, "charge", 0)
	require.NoError(t, err)
	rec := &kgo.Record{Topic: "orders", Partition: 1, Offset: 7, Key: []byte("k"), Value: []byte("v"), Timestamp: testNow}
	step := src.Next(rec, testNow)
	require.Equal(t, tailer.ActionRun, step.Action)

	failure := func(attempt int, o scheduler.Outcome) tailer.Step {
		w := step.Workload
		w.Attempt = attempt
		return src.Failed(&tailer.Failure{Record: rec, Workload: &w, Outcome: o, FirstFailure: testNow})
	}
	retry := failure(1, scheduler.Retriable(scheduler.ReasonError, "e"))
	require.Equal(t, tailer.ActionRetry, retry.Action)
	require.Equal(t, 2, retry.Workload.Attempt)
	require.Equal(t, step.Workload.ID, retry.Workload.ID)
	require.Equal(t, testNow.Add(time.Minute), retry.Until, "the policy's backoff, from the router's clock")

	slow := scheduler.Retriable(scheduler.ReasonOverloaded, "429")
	slow.RetryAfter = 2 * time.Minute
	require.Equal(t, testNow.Add(2*time.Minute), failure(2, slow).Until, "Retry-After is honoured")

	exhausted := failure(3, scheduler.Retriable(scheduler.ReasonError, "e"))
	require.Equal(t, tailer.ActionProduce, exhausted.Action)
	require.Equal(t, tailer.ToDeadLetter, exhausted.To)
	require.Equal(t, ReasonExhausted, exhausted.Reason)

	fatal := failure(1, scheduler.Fatal(scheduler.ReasonFatal, "bad"))
	require.Equal(t, tailer.ToDeadLetter, fatal.To)

	storm := src.Failed(&tailer.Failure{Record: rec, Workload: &step.Workload, Outcome: scheduler.Retriable(scheduler.ReasonError, "e"),
		FirstFailure: testNow, Storm: true})
	require.Equal(t, tailer.ActionRetry, storm.Action)
	require.True(t, storm.Until.IsZero(), "a storm retry keeps the tailer's own backoff and pauses the partition")
}

// TestSourceReaderNextAllocatesOnce: reading a source record costs one allocation, its
// workload ID; the ID is right for short and for very long topic names.
func TestSourceReaderNextAllocatesOnce(t *testing.T) {
	rt := testRouter(t, nil, 0)
	src, err := NewSourceReader(rt, "charge", 0)
	require.NoError(t, err)
	rec := &kgo.Record{Topic: "orders", Partition: 11, Offset: 123456789, Value: []byte("v"), Timestamp: testNow}
	require.Equal(t, "orders/11/123456789", src.Next(rec, testNow).Workload.ID)
	allocs := testing.AllocsPerRun(100, func() { src.Next(rec, testNow) })
	require.LessOrEqual(t, allocs, 1.0)
	long := strings.Repeat("t", 240)
	require.Equal(t, long+"/0/-1", originID(long, 0, -1))
}
