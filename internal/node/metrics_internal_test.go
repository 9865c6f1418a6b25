package node

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kasync/kasync/internal/status"
)

func TestRungBacklog(t *testing.T) {
	t.Parallel()
	const topic = "kasync.delay.30s"
	listed := func(offsets ...int64) kadm.ListedOffsets {
		ps := map[int32]kadm.ListedOffset{}
		for p, o := range offsets {
			ps[int32(p)] = kadm.ListedOffset{Topic: topic, Partition: int32(p), Offset: o}
		}
		return kadm.ListedOffsets{topic: ps}
	}
	committed := func(at map[int32]int64) kadm.OffsetResponses {
		ps := map[int32]kadm.OffsetResponse{}
		for p, o := range at {
			ps[p] = kadm.OffsetResponse{Offset: kadm.Offset{Topic: topic, Partition: p, At: o}}
		}
		return kadm.OffsetResponses{topic: ps}
	}
	starts, ends := listed(0, 5, 10), listed(10, 5, 40)
	for _, tc := range []struct {
		name      string
		committed kadm.OffsetResponses
		want      int64
	}{
		{"no commit: from the log start", nil, 10 + 0 + 30},
		{"commits", committed(map[int32]int64{0: 4, 1: 5, 2: 38}), 6 + 0 + 2},
		{"no commit is -1", committed(map[int32]int64{0: -1}), 10 + 0 + 30},
		{"a commit below the log start counts from the start", committed(map[int32]int64{2: 3}), 10 + 0 + 30},
		{"drained", committed(map[int32]int64{0: 10, 1: 5, 2: 40}), 0},
	} {
		n, parts, ok := rungBacklog(topic, starts, ends, tc.committed)
		require.True(t, ok, tc.name)
		require.Equal(t, tc.want, n, tc.name)
		var sum int64
		for i, p := range parts {
			require.Equal(t, int32(i), p.Partition, "%s: a row per partition, by number", tc.name)
			sum += p.Waiting
		}
		require.Equal(t, n, sum, tc.name)
	}

	// The rows are the offsets Status peeks at: the head of a waiting partition is at
	// the commit, or at the log start without one or below it.
	_, parts, _ := rungBacklog(topic, starts, ends, committed(map[int32]int64{0: 4, 2: 3}))
	require.Equal(t, []status.RungPartition{
		{Partition: 0, Committed: 4, LogStart: 0, LogEnd: 10, Waiting: 6},
		{Partition: 1, Committed: -1, LogStart: 5, LogEnd: 5, Waiting: 0},
		{Partition: 2, Committed: 3, LogStart: 10, LogEnd: 40, Waiting: 30},
	}, parts)
	rung := status.Rung{Topic: topic, Partitions: parts}
	require.Equal(t, []status.PeekTarget{{Topic: topic, Partition: 0, Offset: 4}, {Topic: topic, Partition: 2, Offset: 10}}, rung.PeekTargets())

	broken := listed(10, 5, 40)
	broken[topic][1] = kadm.ListedOffset{Topic: topic, Partition: 1, Offset: -1, Err: kerr.NotLeaderForPartition}
	failedCommit := committed(map[int32]int64{0: 4})
	failedCommit[topic][0] = kadm.OffsetResponse{Err: kerr.UnstableOffsetCommit}
	for name, ok := range map[string]bool{
		"unknown topic":          okOf(rungBacklog("other", starts, ends, nil)),
		"an end with an error":   okOf(rungBacklog(topic, starts, broken, nil)),
		"a start missing":        okOf(rungBacklog(topic, listed(0, 5), ends, nil)),
		"a commit with an error": okOf(rungBacklog(topic, starts, ends, failedCommit)),
	} {
		require.False(t, ok, "%s: a rung is never reported short", name)
	}
}

func okOf(_ int64, _ []status.RungPartition, ok bool) bool { return ok }
