package tailer_test

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
)

// TestFencedResultDoesNotMoveCheckpoint: tailer A holds the results of offsets ≥ 5 of
// every partition. Tailer B joins the group, so a real cooperative rebalance moves some
// partitions from A to B (B never completes anything). Only then are A's held results
// released: for the partitions A lost they must change nothing, neither A's Pebble
// checkpoint nor the group's commit; for the partitions A kept they complete normally.
func TestFencedResultDoesNotMoveCheckpoint(t *testing.T) {
	t.Parallel()
	const held = 5
	f := newFixture(t, 4)
	kafkatest.ProduceN(t, f.brokers, f.topic, 200, valueRecord(f.topic))
	end := kafkatest.EndOffsets(t, f.brokers, f.topic)
	for p, e := range end {
		require.Greater(t, e, int64(held), "partition %d needs records above the held offset", p)
	}

	release := make(chan struct{})
	execA := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		if _, o := partitionOffset(t, w.ID); o >= held {
			select {
			case <-release:
			case <-ctx.Done():
				return scheduler.Retriable(scheduler.ReasonShutdown, "stopped")
			}
		}
		return scheduler.Success()
	}
	storeA := newStore(t, vfs.NewMem())
	cfgA := f.config("a", localScheduler(t, execA, 0), storeA)
	a := start(t, cfgA)
	f.waitCommitted(t, cfgA.Group, func(c map[int32]int64) bool {
		for p := range end {
			if c[p] != held {
				return false
			}
		}
		return true
	})

	execB := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		<-ctx.Done()
		return scheduler.Retriable(scheduler.ReasonShutdown, "stopped")
	}
	cfgB := f.config("b", localScheduler(t, execB, 0), newStore(t, vfs.NewMem()))
	b := start(t, cfgB)
	// B reading records proves the rebalance finished: A has released those partitions.
	require.Eventually(t, func() bool { return b.Stats().Read > 0 }, 60*time.Second, 10*time.Millisecond)

	close(release)
	// The partitions A kept reach their end; the moved ones stay at the held offset.
	committed := f.waitCommitted(t, cfgA.Group, func(c map[int32]int64) bool {
		done, stuck := 0, 0
		for p, e := range end {
			switch c[p] {
			case e:
				done++
			case held:
				stuck++
			}
		}
		return done+stuck == len(end) && done > 0 && stuck > 0
	})
	// Every held result of a moved partition was dropped as fenced; wait for all of
	// them to come back before looking at A's checkpoints.
	var movedRecords int64 // records above the held offset in the partitions that moved
	for p, c := range committed {
		if c == held {
			movedRecords += end[p] - held
		}
	}
	require.Eventually(t, func() bool { return b.Stats().Read == movedRecords },
		30*time.Second, 10*time.Millisecond, "B reads the rest of the moved partitions from the commit")
	require.Eventually(t, func() bool { return a.Stats().Fenced == movedRecords },
		30*time.Second, 10*time.Millisecond, "A's results for moved partitions are fenced")
	a.stop(t)
	b.stop(t)

	for p, c := range kafkatest.CommittedOffsets(t, f.brokers, cfgA.Group, f.topic) {
		if committed[p] != held {
			continue
		}
		require.Equal(t, int64(held), c, "partition %d: no fenced result moved the group commit", p)
		st, ok, err := storeA.Load(context.Background(), checkpoint.Key{Group: cfgA.Group, Topic: f.topic, Partition: p})
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, int64(held), st.Watermark, "partition %d: A's checkpoint stayed where it was at revocation", p)
		require.True(t, st.Done.IsEmpty(), "partition %d: no fenced result was recorded as done", p)
	}
}
