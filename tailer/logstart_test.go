package tailer_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// vanished sets up a partition whose checkpoint is at 40 while retention removed
// everything below 70 of its 100 records: 30 records were lost before they ran.
func vanished(t *testing.T) (*fixture, tailer.Config, *executions) {
	t.Helper()
	f := newFixture(t, 1)
	store := newStore(t, vfs.NewMem())
	kafkatest.ProduceN(t, f.brokers, f.topic, 40, valueRecord(f.topic))
	var ran executions
	exec := func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		ran.add(w.ID)
		return scheduler.Success()
	}
	cfg := f.config("first", localScheduler(t, exec, 0), store)
	r := start(t, cfg)
	f.waitCommitted(t, cfg.Group, atEnd(map[int32]int64{0: 40}))
	r.stop(t)

	kafkatest.ProduceN(t, f.brokers, f.topic, 60, valueRecord(f.topic))
	var del kadm.Offsets
	del.AddOffset(f.topic, 0, 70, -1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kafkatest.Admin(t, f.brokers).DeleteRecords(ctx, del)
	require.NoError(t, err)
	require.NoError(t, resp.Error())

	var second executions
	exec2 := func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		second.add(w.ID)
		return scheduler.Success()
	}
	cfg2 := f.config("second", localScheduler(t, exec2, 0), store)
	cfg2.Start = tailer.StartLatest // for a group with no checkpoint only: never a skip to the end
	return f, cfg2, &second
}

// A resume offset below the log start is counted and resumes at the log start, not
// at the end (even for a tailer that starts a new group at the latest offset).
func TestOffsetsLostResumeAtLogStart(t *testing.T) {
	t.Parallel()
	f, cfg, ran := vanished(t)
	r := start(t, cfg)
	f.waitCommitted(t, cfg.Group, atEnd(map[int32]int64{0: 100}))
	require.EqualValues(t, 30, r.Stats().LostByRetention, "offsets 40..69 were removed before they ran")
	got := ran.snapshot()
	require.Len(t, got, 30, "every record that still exists ran")
	for o := 70; o < 100; o++ {
		require.Equal(t, 1, got[f.topic+"/0/"+strconv.Itoa(o)], "offset %d", o)
	}
}

// With OffsetsLostFail the tailer reads nothing of the partition and Run returns
// ErrOffsetsLost naming it; the group's commit stays where it was.
func TestOffsetsLostFailStops(t *testing.T) {
	t.Parallel()
	f, cfg, ran := vanished(t)
	cfg.OffsetsLost = tailer.OffsetsLostFail
	tl, err := tailer.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = tl.Run(ctx)
	require.True(t, errors.Is(err, tailer.ErrOffsetsLost), "Run returned %v", err)
	require.ErrorContains(t, err, "30 records lost")
	require.ErrorContains(t, err, `set it to "earliest"`)
	require.NoError(t, ctx.Err(), "Run stopped by itself")
	require.EqualValues(t, 30, tl.Stats().LostByRetention)
	require.Empty(t, ran.snapshot(), "nothing ran")
	require.Equal(t, map[int32]int64{0: 40}, kafkatest.CommittedOffsets(t, f.brokers, cfg.Group, f.topic))
}

func TestOffsetsLostPolicyValidated(t *testing.T) {
	t.Parallel()
	_, err := tailer.New(tailer.Config{Name: "t", Topic: "x", OffsetsLost: "latest"})
	require.ErrorContains(t, err, `OffsetsLost: "latest" is not "earliest" or "fail"`)
}
