package delaystreams

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/tailer"
)

// TestScheduledTaskRunsAsAttemptOne: a submitted task produced onto a rung for later
// carries no origin and attempt 0; a hop keeps it scheduled and writes its own position
// as the origin; when due it runs as attempt 1 with that position as its id.
func TestScheduledTaskRunsAsAttemptOne(t *testing.T) {
	t.Parallel()
	rt := testRouter(t, map[string]RetryPolicy{"charge": {MaxAttempts: 2, Backoff: []time.Duration{time.Second}}}, 0)
	src := &kgo.Record{Key: []byte("k"), Value: []byte("v"), Headers: []kgo.RecordHeader{
		{Key: "trace", Value: []byte("1")}, {Key: HeaderOrigin, Value: []byte("forged/0/1")}}}
	due := testNow.Add(90 * time.Second)
	rec, d := rt.Scheduled(src, "charge", 7, due)
	require.Equal(t, 1, d.Rung, "90s left: the 1m rung")
	require.Equal(t, "kasync.delay.1m", rec.Topic)
	require.Empty(t, headerOf(rec, HeaderOrigin), "no origin: the rung record's position is the task's")
	require.Equal(t, "0", headerOf(rec, HeaderAttempt))
	require.Equal(t, "1", headerOf(rec, HeaderScheduled))
	require.Equal(t, "7", headerOf(rec, HeaderPriority))

	m, fixed, err := ParseMeta(rec.Headers, testNow, rt.MaxDelay())
	require.NoError(t, err)
	require.Empty(t, fixed, "a scheduled record needs no fixing")
	require.True(t, m.Scheduled)
	require.Equal(t, 1, m.Attempt)

	// On its rung, read after a minute: 30s left, so it hops to the 30s rung.
	rec.Partition, rec.Offset, rec.Timestamp = 3, 42, testNow
	reader, err := NewRungReader(rt, 1, nil)
	require.NoError(t, err)
	step := reader.Next(rec, testNow.Add(time.Minute))
	require.Equal(t, tailer.ActionProduce, step.Action)
	require.Equal(t, "kasync.delay.1m/3/42", headerOf(step.Record, HeaderOrigin), "the hop names the first rung record")
	require.Equal(t, "1", headerOf(step.Record, HeaderScheduled))
	require.Equal(t, "0", headerOf(step.Record, HeaderAttempt))

	// Due: it runs as attempt 1, named after its first rung record.
	hop := step.Record
	hop.Partition, hop.Offset, hop.Timestamp = 0, 9, testNow.Add(time.Minute)
	first, err := NewRungReader(rt, 0, nil)
	require.NoError(t, err)
	step = first.Next(hop, due)
	require.Equal(t, tailer.ActionRun, step.Action)
	require.Equal(t, 1, step.Workload.Attempt)
	require.Equal(t, "kasync.delay.1m/3/42", step.Workload.ID)
	require.Equal(t, int32(7), step.Workload.Priority)
	require.Len(t, step.Workload.Headers, 1, "only the user's headers reach the function")
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
