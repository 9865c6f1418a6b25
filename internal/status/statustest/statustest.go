// Package statustest writes what `kasync status` reads, for tests: topics with exact
// names (rung topics), records with chosen partitions, timestamps and headers, and
// consumer group commits, against the brokers of internal/kafkatest.
package statustest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/kafkatest"
)

// CreateTopic creates the topic name with the given partitions, deleted when the test
// ends (on a real cluster; the embedded broker goes away anyway).
func CreateTopic(t testing.TB, brokers []string, name string, partitions int32) {
	t.Helper()
	adm := kafkatest.Admin(t, brokers)
	ctx, cancel := context.WithTimeout(t.Context(), kafkatest.Timeout)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, name)
	require.NoError(t, err, "statustest: create topic %s", name)
	require.NoError(t, resp.Err, "statustest: create topic %s", name)
	t.Cleanup(func() {
		cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: brokers, ClientID: "kasync-test"})
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(cl).DeleteTopic(ctx, name)
	})
}

// Produce writes n records to one partition of topic, each with timestamp ts and the
// given headers, and returns once all are acknowledged.
func Produce(t testing.TB, brokers []string, topic string, partition int32, n int, ts time.Time, headers ...kgo.RecordHeader) {
	t.Helper()
	cl := kafkatest.Client(t, brokers, append(kafka.ProducerOpts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	ctx, cancel := context.WithTimeout(t.Context(), kafkatest.Timeout)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Timestamp: ts,
			Value: []byte("v" + strconv.Itoa(i)), Headers: headers}
	}
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr(), "statustest: produce to %s/%d", topic, partition)
}

// Due is a kasync-due header for t.
func Due(t time.Time) kgo.RecordHeader {
	return kgo.RecordHeader{Key: delaystreams.HeaderDue, Value: strconv.AppendInt(nil, t.UnixMilli(), 10)}
}

// Commit commits offsets (partition → offset) of topic for group, as a stopped
// consumer of that group would have: the group exists afterwards, with no members.
func Commit(t testing.TB, brokers []string, group, topic string, offsets map[int32]int64) {
	t.Helper()
	os := kadm.Offsets{}
	for p, o := range offsets {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	ctx, cancel := context.WithTimeout(t.Context(), kafkatest.Timeout)
	defer cancel()
	require.NoError(t, kafkatest.Admin(t, brokers).CommitAllOffsets(ctx, group, os), "statustest: commit for group %s", group)
}

// Join starts a member of group consuming topic (committing nothing) and returns once
// it has joined and been assigned, that is, once it fetched a record: topic must hold
// one. The member leaves when the test ends.
func Join(t testing.TB, brokers []string, group, topic string) {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(t.Context(), kafkatest.Timeout)
	defer cancel()
	for {
		fs := cl.PollRecords(ctx, 1)
		require.NoError(t, ctx.Err(), "statustest: group %s got no record of %s", group, topic)
		if fs.NumRecords() > 0 {
			return
		}
	}
}
