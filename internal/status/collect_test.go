package status_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/status"
	"github.com/kasync/kasync/internal/status/statustest"
	"github.com/kasync/kasync/internal/testutil"
)

// ageTolerance is how far a measured age may be from the age the test gave the
// record: the time between producing and collecting, on a slow machine.
const ageTolerance = 30 * time.Second

func collect(t *testing.T, brokers []string, req status.Request) *status.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r, err := status.Collect(ctx, kafka.ClientConfig{Brokers: brokers}, req)
	require.NoError(t, err)
	return r
}

func findTailer(t *testing.T, r *status.Report, group string) status.Tailer {
	t.Helper()
	for _, tl := range r.Tailers {
		if tl.Group == group {
			return tl
		}
	}
	t.Fatalf("no tailer of group %s in %+v", group, r.Tailers)
	return status.Tailer{}
}

func requireAge(t *testing.T, want time.Duration, got *float64, what string) {
	t.Helper()
	require.NotNil(t, got, "%s: age unknown", what)
	require.InDelta(t, want.Seconds(), *got, ageTolerance.Seconds(), "%s: age", what)
}

// TestCollectLagAndAge: per partition, lag is exactly end − committed (or − log start
// without a commit), and the age is that of the record at the committed offset.
func TestCollectLagAndAge(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 3)
	hourAgo, twoHoursAgo := time.Now().Add(-time.Hour), time.Now().Add(-2*time.Hour)
	statustest.Produce(t, brokers, topic, 0, 4, twoHoursAgo) // offsets 0-3: done
	statustest.Produce(t, brokers, topic, 0, 6, hourAgo)     // offsets 4-9: not done
	statustest.Produce(t, brokers, topic, 1, 5, hourAgo)     // all done
	statustest.Produce(t, brokers, topic, 2, 3, twoHoursAgo) // never committed
	group := "kasync.lag-" + topic
	statustest.Commit(t, brokers, group, topic, map[int32]int64{0: 4, 1: 5})

	r := collect(t, brokers, status.Request{
		Tailers:    []status.TailerSpec{{Name: "orders", Group: group, Topic: topic}},
		RungPrefix: topic + ".delay", DeadLetterTopic: topic + ".dlq",
		PeekTimeout: 20 * time.Second,
	})
	require.Len(t, r.Tailers, 1)
	tl := r.Tailers[0]
	require.Equal(t, "orders", tl.Name)
	require.Equal(t, "Empty", tl.State, "the group committed and has no member")
	require.Zero(t, tl.Members)
	require.Empty(t, tl.Error)
	require.Len(t, tl.Partitions, 3)
	p0, p1, p2 := tl.Partitions[0], tl.Partitions[1], tl.Partitions[2]
	require.Equal(t, status.TailerPartition{Topic: topic, Partition: 0, Committed: 4, LogStart: 0, LogEnd: 10, Lag: 6, LagSeconds: p0.LagSeconds}, p0)
	require.Equal(t, status.TailerPartition{Topic: topic, Partition: 1, Committed: 5, LogStart: 0, LogEnd: 5, Lag: 0, LagSeconds: new(0.0)}, p1)
	require.Equal(t, status.TailerPartition{Topic: topic, Partition: 2, Committed: -1, LogStart: 0, LogEnd: 3, Lag: 3, LagSeconds: p2.LagSeconds}, p2)
	requireAge(t, time.Hour, p0.LagSeconds, "partition 0 (the record at the committed offset is an hour old)")
	requireAge(t, 2*time.Hour, p2.LagSeconds, "partition 2 (no commit: the first record)")
	require.Equal(t, int64(9), tl.Lag)
	requireAge(t, 2*time.Hour, tl.MaxLagSeconds, "tailer")
}

// TestCollectMembersAndGroups: a group with a live member is Stable with one member;
// --group shows the topics a group committed to; an unknown group is an
// *UnknownGroupsError naming it and suggesting kasync's groups.
func TestCollectMembersAndGroups(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	statustest.Produce(t, brokers, topic, 0, 3, time.Now())
	live := "kasync.live-" + topic
	statustest.Join(t, brokers, live, topic)
	other := "other-" + topic
	statustest.Commit(t, brokers, other, topic, map[int32]int64{0: 1})

	r := collect(t, brokers, status.Request{Groups: []string{live, other}, RungPrefix: topic, DeadLetterTopic: topic})
	got := findTailer(t, r, live)
	require.Equal(t, "Stable", got.State)
	require.Equal(t, 1, got.Members)
	require.Len(t, got.Partitions, 2, "the assigned topic's partitions, without commits")
	require.Equal(t, int64(3), got.Lag)
	got = findTailer(t, r, other)
	require.Len(t, got.Partitions, 2)
	require.Equal(t, int64(2), got.Partitions[0].Lag)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := status.Collect(ctx, kafka.ClientConfig{Brokers: brokers}, status.Request{Groups: []string{live, "kasync.nosuch"}})
	var unknown *status.UnknownGroupsError
	require.ErrorAs(t, err, &unknown)
	require.Equal(t, []string{"kasync.nosuch"}, unknown.Groups)
	require.Contains(t, unknown.Known, live)
	require.NotContains(t, unknown.Known, other)
}

// TestCollectFindsKasyncGroups: with no config and no --group, the groups named
// kasync.* and those committing to an ingest topic are tailers, the latter marked
// ingest; rung groups are rungs, other groups are left out.
func TestCollectFindsKasyncGroups(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 1)
	ingest := status.IngestTopicPrefix + topic
	statustest.CreateTopic(t, brokers, ingest, 1)
	prefix := topic + ".delay"
	rung := prefix + ".1m"
	statustest.CreateTopic(t, brokers, rung, 1)
	statustest.Commit(t, brokers, "kasync.a-"+topic, topic, map[int32]int64{0: 0})
	statustest.Commit(t, brokers, "ingest-"+topic, ingest, map[int32]int64{0: 0})
	statustest.Commit(t, brokers, ingest, ingest, map[int32]int64{0: 0}) // as a node names it
	statustest.Commit(t, brokers, "other-"+topic, topic, map[int32]int64{0: 0})
	statustest.Commit(t, brokers, rung, rung, map[int32]int64{0: 0})

	r := collect(t, brokers, status.Request{RungPrefix: prefix, DeadLetterTopic: topic})
	var groups []string
	for _, tl := range r.Tailers {
		groups = append(groups, tl.Group)
	}
	require.Contains(t, groups, "kasync.a-"+topic)
	require.Contains(t, groups, "ingest-"+topic)
	require.Contains(t, groups, ingest)
	require.False(t, findTailer(t, r, "kasync.a-"+topic).Ingest)
	require.True(t, findTailer(t, r, "ingest-"+topic).Ingest, "it reads an ingest topic only")
	require.True(t, findTailer(t, r, ingest).Ingest, "named after an ingest topic")
	require.NotContains(t, groups, "other-"+topic)
	require.NotContains(t, groups, rung)
	require.Len(t, r.Rungs, 1)
	require.Equal(t, rung, r.Rungs[0].Topic)
	require.Equal(t, "1m", r.Rungs[0].Delay)
	require.Equal(t, "Empty", r.Rungs[0].State)
}

// TestCollectRungs: waiting per rung is exactly end − committed (log start without a
// commit) summed over partitions; the oldest due is the earliest head's kasync-due and
// the lateness is now minus it. The dead letter's records are counted exactly.
func TestCollectRungs(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	prefix := kafkatest.TopicName(t)
	short, long := prefix+".30s", prefix+".5m"
	statustest.CreateTopic(t, brokers, short, 2)
	statustest.CreateTopic(t, brokers, long, 1)
	dead := prefix + ".dead"
	statustest.CreateTopic(t, brokers, dead, 2)
	now := time.Now()
	due1, due2, due3 := now.Add(-10*time.Minute).Truncate(time.Millisecond), now.Add(-5*time.Minute).Truncate(time.Millisecond), now.Add(time.Hour).Truncate(time.Millisecond)
	statustest.Produce(t, brokers, short, 0, 2, now, statustest.Due(now.Add(-time.Hour))) // done
	statustest.Produce(t, brokers, short, 0, 3, now, statustest.Due(due1))                // waiting, head at offset 2
	statustest.Produce(t, brokers, short, 1, 4, now, statustest.Due(due2))                // no commit: all 4 wait
	statustest.Produce(t, brokers, long, 0, 2, now, statustest.Due(due3))                 // due in an hour
	statustest.Commit(t, brokers, short, short, map[int32]int64{0: 2})
	statustest.Produce(t, brokers, dead, 0, 3, now)
	statustest.Produce(t, brokers, dead, 1, 4, now)

	r := collect(t, brokers, status.Request{RungPrefix: prefix, DeadLetterTopic: dead, PeekTimeout: 20 * time.Second})
	require.Len(t, r.Rungs, 2)
	s, l := r.Rungs[0], r.Rungs[1]
	require.Equal(t, short, s.Topic)
	require.Equal(t, short, s.Group)
	require.Equal(t, "Empty", s.State)
	require.Equal(t, int64(7), s.Waiting)
	require.Equal(t, []int64{3, 4}, []int64{s.Partitions[0].Waiting, s.Partitions[1].Waiting})
	require.NotNil(t, s.OldestDue)
	require.True(t, due1.Equal(*s.OldestDue), "oldest due %v, want %v", s.OldestDue, due1)
	requireAge(t, 10*time.Minute, s.LatenessSeconds, "rung 30s lateness")

	require.Equal(t, long, l.Topic)
	require.Equal(t, status.StateNoGroup, l.State)
	require.Equal(t, int64(2), l.Waiting)
	require.True(t, due3.Equal(*l.OldestDue))
	require.Equal(t, 0.0, *l.LatenessSeconds, "not due yet: not late")

	require.Equal(t, dead, r.DeadLetter.Topic)
	require.Equal(t, int64(7), r.DeadLetter.Records)
	require.Len(t, r.DeadLetter.Partitions, 2)

	// Configured rungs that do not exist are reported, not skipped.
	r = collect(t, brokers, status.Request{RungPrefix: prefix, Rungs: []time.Duration{30 * time.Second, time.Minute}, DeadLetterTopic: dead + "x"})
	require.Len(t, r.Rungs, 2)
	require.Empty(t, r.Rungs[0].Error)
	require.Contains(t, r.Rungs[1].Error, "does not exist")
	require.Contains(t, r.DeadLetter.Error, "does not exist")
}

// TestCollectChangesNothing: collecting joins no group and commits nothing.
func TestCollectChangesNothing(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	statustest.Produce(t, brokers, topic, 0, 5, time.Now().Add(-time.Minute))
	group := "kasync.still-" + topic
	statustest.Commit(t, brokers, group, topic, map[int32]int64{0: 1})
	adm := kafkatest.Admin(t, brokers)
	before, err := adm.ListGroups(t.Context())
	require.NoError(t, err)

	collect(t, brokers, status.Request{Groups: []string{group}, RungPrefix: topic, DeadLetterTopic: topic})
	after, err := adm.ListGroups(t.Context())
	require.NoError(t, err)
	require.Equal(t, before.Groups(), after.Groups())
	require.Equal(t, map[int32]int64{0: 1}, kafkatest.CommittedOffsets(t, brokers, group, topic))
}

// TestCollectUnreachable: brokers that do not answer fail the first request with
// ErrUnreachable when the context ends.
func TestCollectUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := status.Collect(ctx, kafka.ClientConfig{Brokers: []string{testutil.FreeAddr(t)}}, status.Request{})
	require.True(t, errors.Is(err, status.ErrUnreachable), "err: %v", err)
}
