package node_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	"github.com/kasync/kasync/internal/nodestatus"
	kruntime "github.com/kasync/kasync/runtime"
)

// failTens fails every event whose payload ends in 0 fatally, with markup in its error.
func failTens(_ context.Context, task *kruntime.Task) error {
	if p := string(task.Payload); strings.HasSuffix(p, "0") {
		return kruntime.Fatal(errors.New("declined <b>" + p + "</b>"))
	}
	return nil
}

// TestStatusAfterARunWithFailures: after a run in which every tenth event fails
// fatally, Status has the function's counters and storm guard, the tailer's
// partitions drained, every rung's depth (0), the dead-letter counts of this node and
// the latest dead letters read from the topic, newest first, with their errors.
func TestStatusAfterARunWithFailures(t *testing.T) {
	t.Parallel()
	const n = 100
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	end := produce(t, brokers, topic, n)
	cfg := testConfig(t, brokers, topic)
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", failTens)
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)

	var st node.Status
	require.Eventually(t, func() bool { // the rung readers' groups are committed a little later
		st = nd.Status(t.Context())
		return len(st.Problems) == 0 && len(st.NotReady) == 0
	}, time.Minute, 20*time.Millisecond, "a snapshot with no problems: %v %v", st.Problems, st.NotReady)

	require.Equal(t, []string{"scheduler", "tailer", "delay"}, st.Roles)
	require.Len(t, st.Functions, 1)
	f := st.Functions[0]
	require.Equal(t, "fn", f.Name)
	require.True(t, f.Scheduled)
	require.Equal(t, uint64(90), f.Succeeded)
	require.Equal(t, uint64(10), f.Fatal)
	require.Zero(t, f.Retriable)
	require.Equal(t, 256, f.Concurrency)
	require.NotNil(t, f.StormGuard, "the guard is on by default")
	require.False(t, f.StormGuard.Active, "fatal outcomes are the events' fault, not a storm")

	require.Len(t, st.Tailers, 1)
	tl := st.Tailers[0]
	require.Equal(t, nodestatus.Tailer{Name: "t", Topic: topic, Function: "fn", Group: cfg.Tailers[0].Group, Member: true,
		Partitions: []nodestatus.Partition{{Partition: 0}, {Partition: 1}}}, tl, "both partitions owned and drained")

	require.Len(t, st.Rungs, len(cfg.Delay.Rungs))
	for i, r := range st.Rungs {
		require.Equal(t, cfg.Delay.Rungs[i].String(), r.Name)
		require.NotNil(t, r.Depth, r.Name)
		require.Zero(t, *r.Depth, r.Name)
		require.True(t, r.Reading, r.Name)
	}

	dl := st.DeadLetters
	require.Equal(t, cfg.DeadLetter.Topic, dl.Topic)
	require.Equal(t, []nodestatus.DeadLetterCount{{Function: "fn", Reason: "fatal", Count: 10}}, dl.Counts)
	require.Len(t, dl.Latest, 10, "fewer than StatusDeadLetters: all of them")
	for i, d := range dl.Latest {
		require.Equal(t, "fn", d.Function)
		require.Equal(t, "fatal", d.Reason)
		require.Regexp(t, `^declined <b>e-\d*0</b>$`, d.Error)
		require.Equal(t, 1, d.Attempt)
		require.True(t, strings.HasPrefix(d.Origin, topic+"/"), d.Origin)
		if i > 0 {
			require.False(t, d.Time.After(dl.Latest[i-1].Time), "newest first")
		}
	}
	nd.stop(t)
	st = nd.Status(t.Context())
	require.Nil(t, st.DeadLetters.Latest, "a stopped node reads no dead letters")
	require.Contains(t, strings.Join(st.Problems, "\n"), "latest dead letters: the node is stopping")
}

// TestStatusShowsRungHeads: on a node that reads no rung (no delay role), records wait
// on the rungs. Status shows each rung's depth and the kasync-due of its oldest
// record, to the millisecond, with its lateness: growing from snapshot to snapshot
// once the record is past due, 0 while it is not due yet. A head without a kasync-due
// header leaves the oldest due unknown, named in Problems; an empty rung has none.
func TestStatusShowsRungHeads(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 1)
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.Delay.Rungs = append(c.Delay.Rungs, config.Duration(time.Second))
	})
	nd := start(t, node.Options{Config: cfg, Roles: node.Roles{Scheduler: true, Tailer: true}})
	rungs := nd.Status(t.Context()).Rungs
	require.Len(t, rungs, 4)
	for _, r := range rungs {
		require.False(t, r.Reading, "no delay role: nobody reads %s", r.Name)
	}

	// Unix milliseconds, as kasync-due carries them.
	soon := time.UnixMilli(time.Now().Add(300 * time.Millisecond).UnixMilli()).UTC()
	later := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli()).UTC()
	onRung := func(rung int, due *time.Time) {
		rec := &kgo.Record{Key: []byte("k"), Value: []byte("v")}
		if due != nil {
			rec.Headers = []kgo.RecordHeader{{Key: delaystreams.HeaderDue, Value: []byte(strconv.FormatInt(due.UnixMilli(), 10))}}
		}
		kafkatest.ProduceN(t, brokers, rungs[rung].Topic, 1, func(int) *kgo.Record { return rec })
	}
	onRung(0, &soon)
	onRung(1, nil) // no kasync-due: not kasync's, or damaged
	onRung(3, &later)

	// lateAfter polls for a snapshot in which the broker answered for every rung (a
	// loaded machine may miss a deadline now and then) and rung 0's lateness is more
	// than above seconds; it fails with the last snapshot after a minute.
	lateAfter := func(above float64, what string) node.Status {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			st := nd.Status(t.Context())
			known := true
			for _, r := range st.Rungs {
				known = known && r.Depth != nil && (*r.Depth == 0 || r.Name == "50ms" || r.OldestDue != nil)
			}
			if r := st.Rungs[0]; known && r.LatenessSeconds != nil && *r.LatenessSeconds > above {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within a minute; the last snapshot's rungs: %s; problems: %v", what, rungsText(st.Rungs), st.Problems)
			}
			time.Sleep(20 * time.Millisecond) // a poll interval, not a wait for an outcome
		}
	}
	first := lateAfter(0, "rung 20ms goes past due")
	past := first.Rungs[0]
	require.Equal(t, int64(1), *past.Depth)
	require.Equal(t, soon, *past.OldestDue, "the head's kasync-due, to the millisecond")
	require.InDelta(t, first.Taken.Sub(soon).Seconds(), *past.LatenessSeconds, 1e-9, "lateness is measured from the snapshot's time")

	second := lateAfter(*past.LatenessSeconds, "lateness grows while nobody reads the rung")
	require.Equal(t, soon, *second.Rungs[0].OldestDue, "the same head")

	for _, st := range []node.Status{first, second} {
		notDue := st.Rungs[3]
		require.Equal(t, int64(1), *notDue.Depth)
		require.Equal(t, later, *notDue.OldestDue)
		require.Zero(t, *notDue.LatenessSeconds, "not due yet: not late")

		empty := st.Rungs[2]
		require.Zero(t, *empty.Depth)
		require.Nil(t, empty.OldestDue, "nothing waits: no oldest due")
		require.Nil(t, empty.LatenessSeconds)

		bad := st.Rungs[1]
		require.Equal(t, int64(1), *bad.Depth)
		require.Nil(t, bad.OldestDue, "a head without kasync-due: unknown, not guessed")
		require.Nil(t, bad.LatenessSeconds)
		var rungProblems []string
		for _, p := range st.Problems {
			if strings.HasPrefix(p, "delay rung") {
				rungProblems = append(rungProblems, p)
			}
		}
		require.Len(t, rungProblems, 1, "%v", st.Problems)
		require.Regexp(t, `^delay rung 50ms: oldest due unknown: the head of partition \d+ \(offset 0\) has no kasync-due header`, rungProblems[0])
	}
}

// rungsText shows rungs with their pointers' values, for a failure message.
func rungsText(rungs []nodestatus.Rung) string {
	var b strings.Builder
	for _, r := range rungs {
		b.WriteString(r.Name + ":")
		if r.Depth != nil {
			b.WriteString(" depth " + strconv.FormatInt(*r.Depth, 10))
		}
		if r.OldestDue != nil {
			b.WriteString(" oldest due " + r.OldestDue.Format(time.RFC3339Nano))
		}
		if r.LatenessSeconds != nil {
			b.WriteString(" late " + strconv.FormatFloat(*r.LatenessSeconds, 'f', -1, 64) + "s")
		}
		b.WriteString("; ")
	}
	return b.String()
}
