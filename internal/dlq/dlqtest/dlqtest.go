// Package dlqtest writes dead letters for tests the way a kasync node does: with
// delaystreams' Router, so they carry the real kasync headers.
package dlqtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
)

// Letter is one dead letter to write.
type Letter struct {
	Function string
	Reason   string // kasync-reason; default "exhausted"
	Error    string // kasync-error
	Attempt  int    // default 5
	Origin   delaystreams.Origin
	Key      []byte
	Value    []byte
	Headers  []kgo.RecordHeader // the source record's own headers
	Priority int32              // kasync-priority, written when not 0
	Time     time.Time          // the record's timestamp; zero: now
	// Dropped writes it as the router writes a dead letter too large to keep whole:
	// without its value, with kasync-dropped: value.
	Dropped bool
}

// Write produces letters to the dead-letter topic with a delaystreams.Router, in order,
// and returns once every one is acknowledged.
func Write(t testing.TB, brokers []string, topic string, letters ...Letter) {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kafka.ProducerOpts()...)
	ladder, err := delaystreams.NewLadder([]time.Duration{time.Second}, 0)
	require.NoError(t, err)
	rt, err := delaystreams.NewRouter(cl, delaystreams.RouterConfig{
		Ladder: ladder, TopicPrefix: "kasynctest.delay", DeadLetter: topic,
	})
	require.NoError(t, err)
	recs := make([]*kgo.Record, len(letters))
	for i, l := range letters {
		if l.Reason == "" {
			l.Reason = delaystreams.ReasonExhausted
		}
		if l.Attempt == 0 {
			l.Attempt = 5
		}
		src := &kgo.Record{Topic: l.Origin.Topic, Partition: l.Origin.Partition, Offset: l.Origin.Offset,
			Key: l.Key, Value: l.Value, Headers: l.Headers}
		f := &delaystreams.Failure{
			Record: src, Function: l.Function, Attempt: l.Attempt, Origin: l.Origin, Priority: l.Priority,
			Outcome:      scheduler.Fatal(scheduler.Reason(l.Reason), l.Error),
			FirstFailure: time.UnixMilli(1_700_000_000_000),
		}
		rec := rt.Record(f, delaystreams.Decision{DeadLetter: true, Reason: l.Reason, Topic: topic, Rung: -1})
		if l.Dropped {
			rec.Value = nil
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: delaystreams.HeaderDropped, Value: []byte("value")})
		}
		rec.Timestamp = l.Time
		recs[i] = rec
	}
	for i, err := range rt.Produce(t.Context(), recs) {
		require.NoError(t, err, "dlqtest: dead letter %d", i)
	}
}

// ReadAll reads every record of topic, to its end offsets as of the call; the topic
// must never have lost records to retention (its end offsets are its record count).
func ReadAll(t testing.TB, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	want := int64(0)
	for _, o := range kafkatest.EndOffsets(t, brokers, topic) {
		want += o
	}
	cl := kafkatest.Client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), kafkatest.Timeout)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "dlqtest: read %d of %d records of %s", len(out), want, topic)
		require.NoError(t, fs.Err(), "dlqtest: read %s", topic)
		out = append(out, fs.Records()...)
	}
	return out
}
