package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
