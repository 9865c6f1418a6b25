package tailer_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// attemptRun is one execution of a workload: by which tailer, of which record, when.
type attemptRun struct {
	node      string
	partition int32
	offset    int64
	at        time.Time
}

// TestRevokeWhileCommitsFail: tailer A has run the first records of every partition
// and committed them. Then the coordinator starts refusing every offset commit of the
// group (COORDINATOR_NOT_AVAILABLE, which franz-go retries until the commit's context
// ends), more records arrive, A completes the first few of each partition (so Pebble
// gets ahead of the group and its periodic commits keep failing) and holds the rest
// running, and tailer B joins: a cooperative rebalance moves some partitions to B while
// no commit can succeed. It asserts that A's revocation ends within its bound (work in
// flight, a periodic write and the final commit, each at most RevokeTimeout) although
// its commits fail; that A starts nothing of a partition after giving it up and none of
// its late results count (fenced); that B resumes each moved partition from the last
// commit the broker accepted; that every record runs, the re-runs being only records A
// had read above that commit on the moved partitions (its in-flight window and the few
// it completed but could not commit); and that no group commit, sampled every 5ms,
// went backwards, also once the faults stop and both commit their ends.
func TestRevokeWhileCommitsFail(t *testing.T) {
	t.Parallel()
	const (
		partitions = 4
		phase      = 200 // records per phase, over all partitions
		completeA  = 3   // records per partition A completes after the faults start
	)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	f := newFixtureOn(t, cluster.ListenAddrs(), partitions)
	kafkatest.ProduceN(t, f.brokers, f.topic, phase, valueRecord(f.topic))
	end1 := kafkatest.EndOffsets(t, f.brokers, f.topic)

	unblock := make(chan struct{})
	var unblockOnce sync.Once
	release := func() { unblockOnce.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	var mu sync.Mutex
	var ran []attemptRun
	execOf := func(node string, holds bool) scheduler.ExecutorFunc {
		return func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			p, o := partitionOffset(t, w.ID)
			mu.Lock()
			ran = append(ran, attemptRun{node, p, o, time.Now()})
			mu.Unlock()
			if holds && o >= end1[p]+completeA {
				select {
				case <-unblock:
				case <-ctx.Done():
					return scheduler.Retriable(scheduler.ReasonShutdown, "stopped")
				}
			}
			return scheduler.Success()
		}
	}
	tune := func(cfg *tailer.Config) {
		cfg.ClientOpts = append(cfg.ClientOpts, kgo.HeartbeatInterval(100*time.Millisecond))
		cfg.PartitionMaxInFlight, cfg.MaxRecords = 20, 10
	}
	logA := &logRecorder{}
	storeA := newStore(t, vfs.NewMem())
	cfgA := f.config("a", localScheduler(t, execOf("a", true), 0), storeA)
	tune(&cfgA)
	cfgA.Logger = slog.New(logA)
	a := start(t, cfgA)
	f.waitCommitted(t, cfgA.Group, atEnd(end1))
	watch := watchCommits(t, f.brokers, cfgA.Group, f.topic)

	faults := cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: cfgA.Group, Err: kerr.CoordinatorNotAvailable, Count: -1})
	t.Cleanup(faults.Remove)
	kafkatest.ProduceN(t, f.brokers, f.topic, phase, func(i int) *kgo.Record { return valueRecord(f.topic)(phase + i) })
	end2 := kafkatest.EndOffsets(t, f.brokers, f.topic)
	// A completed its few of every partition into Pebble, and holds work running.
	require.Eventually(t, func() bool {
		for p := range int32(partitions) {
			st, ok, err := storeA.Load(context.Background(), checkpoint.Key{Group: cfgA.Group, Topic: f.topic, Partition: p})
			if err != nil || !ok || st.Watermark < min(end1[p]+completeA, end2[p]) {
				return false
			}
		}
		return a.Stats().InFlight > 0
	}, 30*time.Second, 5*time.Millisecond, "A runs the new records while its group commits fail")
	require.Equal(t, end1, kafkatest.CommittedOffsets(t, f.brokers, cfgA.Group, f.topic), "no commit got through the faults")

	cfgB := f.config("b", localScheduler(t, execOf("b", false), 0), newStore(t, vfs.NewMem()))
	tune(&cfgB)
	b := start(t, cfgB)
	var released slog.Record
	require.Eventually(t, func() bool {
		rs := logA.matching("partitions released")
		if len(rs) > 0 {
			released = rs[0]
		}
		return len(rs) > 0
	}, 60*time.Second, 5*time.Millisecond, "A gives up the partitions B gets")
	tookV, ok := attrOf(released, "took")
	require.True(t, ok)
	took := tookV.Duration()
	require.Less(t, took, 3*cfgA.RevokeTimeout+2*time.Second,
		"revocation is bounded: work in flight, a periodic write and the final commit each take at most RevokeTimeout")
	require.NotEmpty(t, logA.matching("final checkpoint of released partitions failed"), "the final commit did fail")
	// Once its work in flight timed out, the revocation waits for the periodic write in
	// progress, if any, and then commits: no later periodic write goes first.
	periodic := logA.between("checkpoint commit failed; will retry", "revoke timeout", "final checkpoint of released partitions failed")
	require.GreaterOrEqual(t, periodic, 0, "A logged the revoke timeout, then its failed final commit")
	require.LessOrEqual(t, periodic, 1, "periodic writes that held the revocation back")

	// B runs the moved partitions from the last accepted commit, through the faults.
	moved := func() map[int32]bool {
		mu.Lock()
		defer mu.Unlock()
		out := map[int32]bool{}
		for _, r := range ran {
			if r.node == "b" {
				out[r.partition] = true
			}
		}
		return out
	}
	require.Eventually(t, func() bool {
		want := int64(0)
		for p := range moved() {
			want += end2[p] - end1[p]
		}
		return want > 0 && b.Stats().Succeeded == want
	}, 60*time.Second, 5*time.Millisecond, "B runs the rest of the moved partitions")
	faults.Remove()
	release()
	f.waitCommitted(t, cfgA.Group, atEnd(end2))
	stats := a.Stats()
	b.stop(t)
	a.stop(t)
	samples, backwards := watch.stop()

	movedParts := moved()
	require.NotEmpty(t, movedParts)
	require.Less(t, len(movedParts), partitions, "A kept some partitions")
	mu.Lock()
	runs := append([]attemptRun(nil), ran...)
	mu.Unlock()
	type rec struct {
		p int32
		o int64
	}
	count := map[rec]int{}
	firstB := map[int32]int64{}
	dups := map[int32]int{}
	for _, r := range runs {
		k := rec{r.partition, r.offset}
		count[k]++
		if count[k] > 1 {
			dups[r.partition]++
		}
		if r.node == "a" && movedParts[r.partition] {
			require.False(t, r.at.After(released.Time), "A started %d/%d after it released the partition", r.partition, r.offset)
		}
		if r.node == "b" {
			if o, ok := firstB[r.partition]; !ok || r.offset < o {
				firstB[r.partition] = r.offset
			}
		}
	}
	for p, e := range end2 {
		for o := range e {
			require.Positive(t, count[rec{p, o}], "record %d/%d ran", p, o)
		}
	}
	for p := range movedParts {
		require.Equal(t, end1[p], firstB[p], "B resumes partition %d from the last commit the broker accepted", p)
	}
	// A's window of a moved partition (a poll may pass its bound by one batch), and the
	// records of it A completed but could not commit.
	window := cfgA.PartitionMaxInFlight + cfgA.MaxRecords + completeA
	for p, n := range dups {
		require.True(t, movedParts[p], "partition %d, which A kept, has %d re-runs", p, n)
		require.LessOrEqual(t, n, window, "partition %d: re-runs beyond A's in-flight window", p)
	}
	require.Positive(t, stats.Fenced, "A's late results for the moved partitions were dropped")
	require.Positive(t, samples)
	require.Empty(t, backwards, "no group commit went backwards")
	t.Logf("revocation with every commit failing took %s (RevokeTimeout %s; it waited for %d periodic write); "+
		"%d of %d partitions moved; re-runs %v; %d of A's results fenced; %d commit samples, none backwards",
		took, cfgA.RevokeTimeout, periodic, len(movedParts), partitions, dups, stats.Fenced, samples)
}
