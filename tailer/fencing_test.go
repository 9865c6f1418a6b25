package tailer_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
)

// refusedPrefix starts the tailer's log line for a group commit refused as stale.
const refusedPrefix = "checkpoint commit failed: the group refused it"

// TestStaleCommitRefusedByBroker proves the broker side of fenced ownership (DESIGN.md
// invariant 5): a commit from a member that lost its partition is refused, and the
// tailer that sent it takes the refusal in its stride.
//
// Tailer A owns the only partition. Then it becomes a zombie: its heartbeats are
// answered by a kfake control and never reach the group, and its next group commit
// (carrying the offset A reached then) is held inside the broker. The broker, hearing
// nothing, drops A; tailer B takes the partition in a new generation, resumes from the
// last commit the broker accepted, runs past A's held offset and commits further. Only
// then is A's commit released to the broker, which must refuse it: had it been taken,
// the group's checkpoint would have gone back to A's offset. A must count the refusal,
// log it once however often its stale commits are refused, not stop, and once its
// heartbeats reach the group again, let the partition go and rejoin. The group's
// committed offset, sampled every 5ms throughout, never goes backwards.
func TestStaleCommitRefusedByBroker(t *testing.T) {
	t.Parallel()
	const batch = 100
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	f := newFixtureOn(t, cluster.ListenAddrs(), 1)
	produced := 0
	produce := func() map[int32]int64 {
		from := produced
		kafkatest.ProduceN(t, f.brokers, f.topic, batch, func(i int) *kgo.Record { return valueRecord(f.topic)(from + i) })
		produced += batch
		return map[int32]int64{0: int64(produced)}
	}
	var runs executions
	exec := func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		runs.add(string(w.Payload))
		return scheduler.Success()
	}
	// A short session, so that the broker drops the zombie within a second.
	groupOpts := []kgo.Opt{kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100 * time.Millisecond)}
	logA := &logRecorder{}
	cfgA := f.config("a", localScheduler(t, exec, 0), newStore(t, vfs.NewMem()))
	cfgA.ClientOpts = append(cfgA.ClientOpts, groupOpts...)
	cfgA.RevokeTimeout = 30 * time.Second // A waits for its held commit's answer, so it sees the refusal
	cfgA.Logger = slog.New(logA)
	a := start(t, cfgA)
	f.waitCommitted(t, cfgA.Group, atEnd(produce()))
	watch := watchCommits(t, f.brokers, cfgA.Group, f.topic)
	memberA, genA := a.GroupMember()
	require.NotEmpty(t, memberA)

	// A's heartbeats stop reaching the group: the control answers them itself.
	var zombie atomic.Bool
	zombie.Store(true)
	t.Cleanup(func() { zombie.Store(false) })
	cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		hb := req.(*kmsg.HeartbeatRequest)
		if !zombie.Load() || hb.MemberID != memberA {
			return nil, nil, false
		}
		return hb.ResponseKind(), nil, true
	})
	// A's next commit waits in the broker until wake, and is then handled as usual.
	type heldCommit struct {
		generation int32
		offset     int64
	}
	held := make(chan heldCommit, 1)
	wake := make(chan struct{})
	var wakeOnce sync.Once
	wakeUp := func() { wakeOnce.Do(func() { close(wake) }) }
	t.Cleanup(wakeUp)
	var holding atomic.Bool
	cluster.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		oc := req.(*kmsg.OffsetCommitRequest)
		if oc.MemberID != memberA || len(oc.Topics) != 1 || len(oc.Topics[0].Partitions) != 1 || !holding.CompareAndSwap(false, true) {
			return nil, nil, false
		}
		held <- heldCommit{oc.Generation, oc.Topics[0].Partitions[0].Offset}
		cluster.SleepControl(func() { <-wake })
		return nil, nil, false // the broker answers it now, as the group stands
	})

	produce()
	var h heldCommit
	select {
	case h = <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("A made no group commit of the new records within 30s")
	}
	require.Equal(t, genA, h.generation, "the held commit is of A's generation")

	cfgB := f.config("b", localScheduler(t, exec, 0), newStore(t, vfs.NewMem()))
	cfgB.ClientOpts = append(cfgB.ClientOpts, groupOpts...)
	b := start(t, cfgB)
	end := produce()
	committed := f.waitCommitted(t, cfgA.Group, atEnd(end)) // B's commits: A's is still held
	_, genB := b.GroupMember()
	require.Greater(t, genB, genA, "B owns the partition in a later generation")
	require.Greater(t, committed[0], h.offset, "taking A's held commit now would move the checkpoint back")

	wakeUp()
	require.Eventually(t, func() bool { return a.Stats().CommitsRefused >= 1 && len(a.Lag()) == 0 },
		30*time.Second, 5*time.Millisecond, "the broker refuses A's held commit, and A lets the partition go")
	require.Equal(t, end, kafkatest.CommittedOffsets(t, f.brokers, cfgA.Group, f.topic), "no refused commit changed the group's checkpoint")

	// A hears from the group again and rejoins as a new member; B keeps the partition.
	zombie.Store(false)
	require.Eventually(t, func() bool {
		m, _ := a.GroupMember()
		return m != "" && m != memberA
	}, 30*time.Second, 5*time.Millisecond, "A rejoins under a new member id")
	end = produce()
	f.waitCommitted(t, cfgA.Group, atEnd(end))
	b.stop(t)
	a.stop(t)
	samples, backwards := watch.stop()

	require.Positive(t, samples)
	require.Empty(t, backwards, "the group's committed offset never went backwards")
	require.Equal(t, end, kafkatest.CommittedOffsets(t, f.brokers, cfgA.Group, f.topic))
	refusals := logA.matching(refusedPrefix)
	require.Len(t, refusals, 1, "A logs the refusal once, not once per refused commit (%d refused)", a.Stats().CommitsRefused)
	errText, _ := attrOf(refusals[0], "err")
	require.True(t, strings.Contains(errText.String(), "UNKNOWN_MEMBER_ID") || strings.Contains(errText.String(), "ILLEGAL_GENERATION"),
		"the refusal names the broker's reason: %s", errText)
	require.Empty(t, logA.matching("checkpoint commit failed; will retry"), "a refusal is not logged as a transient failure")
	got := runs.snapshot()
	for i := range produced {
		require.Positive(t, got["e-"+strconv.Itoa(i)], "record e-%d ran", i)
	}
	t.Logf("A's commit of offset %d (generation %d) held until B (generation %d) committed %d; the broker refused it: %s; "+
		"commits refused %d times, logged once; %d commit samples, none backwards",
		h.offset, h.generation, genB, committed[0], errText, a.Stats().CommitsRefused, samples)
}
