package node_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	"github.com/kasync/kasync/internal/nodestatus"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	kruntime "github.com/kasync/kasync/runtime"
)

// plainConn is a connection to the gRPC API at addr without TLS, closed with the test.
func plainConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// getStatus calls GetStatus with a deadline of d and decodes the answer.
func getStatus(t *testing.T, client kasyncv1.NodeClient, d time.Duration) (nodestatus.Status, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	p, err := client.GetStatus(ctx, &kasyncv1.GetStatusRequest{})
	if err != nil {
		return nodestatus.Status{}, err
	}
	st, err := nodestatus.FromProto(p)
	require.NoError(t, err, "a node's answer always decodes")
	return st, nil
}

// TestStatusAPIListsIngestTailers: over the node's gRPC listener, GetStatus answers
// the snapshot of a node whose function accepts submitted tasks: its source tailer,
// then the ingest tailer of kasync.fn.<function>, marked as such, a member of its
// group with the ingest topic's partitions drained; the function's counters count the
// events and the submitted tasks.
func TestStatusAPIListsIngestTailers(t *testing.T) {
	t.Parallel()
	const n, submitted = 50, 6
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	end := produce(t, brokers, topic, n)
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.Functions[0].Name, c.Functions[0].Submit = "listed", true
		c.Tailers[0].Function = "listed"
	})
	reg := kruntime.NewRegistry()
	reg.MustRegister("listed", failTens)
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	conn := plainConn(t, nd.GRPCAddr())
	for i := range submitted {
		_, err := kasyncv1.NewTasksClient(conn).Submit(ctxT(t), &kasyncv1.SubmitRequest{Function: "listed",
			Key: []byte{'k', byte('0' + i)}, Payload: []byte{'s', byte('1' + i)}})
		require.NoError(t, err)
	}
	// Keys k0..k5 land on both partitions: a partition never written to shows a lag of
	// 1 until its first record (tailer.Lag counts from watermark -1 there).
	for p, end := range kafkatest.EndOffsets(t, brokers, config.IngestTopic("listed")) {
		require.Positive(t, end, "ingest partition %d has tasks", p)
	}
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)

	client := kasyncv1.NewNodeClient(conn)
	var st nodestatus.Status
	require.Eventually(t, func() bool {
		var err error
		st, err = getStatus(t, client, 10*time.Second)
		require.NoError(t, err)
		f := st.Functions[0]
		if len(st.Problems) > 0 || len(st.NotReady) > 0 || f.Succeeded+f.Fatal != n+submitted || len(st.Tailers) != 2 {
			return false
		}
		for _, tl := range st.Tailers {
			if len(tl.Partitions) != int(cfg.Delay.Partitions) {
				return false
			}
			for _, p := range tl.Partitions {
				if p.LagRecords != 0 {
					return false
				}
			}
		}
		return true
	}, time.Minute, 20*time.Millisecond, "a snapshot with every event and task done and checkpointed")

	require.Equal(t, []string{"scheduler", "tailer", "delay"}, st.Roles)
	require.Equal(t, "t", st.Tailers[0].Name)
	require.False(t, st.Tailers[0].Ingest, "a tailer of the config is a source tailer")
	ingest := config.IngestTopic("listed")
	want := nodestatus.Tailer{Name: ingest, Topic: ingest, Function: "listed", Group: ingest, Member: true, Ingest: true,
		Partitions: []nodestatus.Partition{{Partition: 0}, {Partition: 1}}}
	require.Equal(t, want, st.Tailers[1], "the ingest tailer, drained")
	require.Equal(t, uint64(n/10), st.Functions[0].Fatal, "every tenth event fails; the tasks s1..s6 do not")
	require.Len(t, st.Rungs, len(cfg.Delay.Rungs))
	require.NotNil(t, st.DeadLetters.Latest, "the latest dead letters were read")

	local := nd.Status(t.Context())
	require.Equal(t, len(local.Tailers), len(st.Tailers), "the API answers what Status has")
	require.True(t, local.Tailers[1].Ingest)
}

// TestStatusAPIAnswersBeforeTheDeadline: while the broker does not answer for the
// delay rungs' offsets, GetStatus still answers within the caller's deadline, shorter
// than the node's own bound on the broker, with what the node has and the rungs'
// depth named as unknown; a node without Kafka (the scheduler role alone) answers with
// its functions and nothing else.
func TestStatusAPIAnswersBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0))
	require.NoError(t, err)
	t.Cleanup(cluster.Close) // after the node stops: cleanups run last-in first-out
	brokers := cluster.ListenAddrs()
	topic := kafkatest.NewTopic(t, brokers, 1)
	cfg := testConfig(t, brokers, topic)
	var hang atomic.Bool
	held := make(chan struct{})
	release := sync.OnceFunc(func() { close(held) })
	cluster.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		for _, tp := range req.(*kmsg.ListOffsetsRequest).Topics {
			if hang.Load() && strings.HasPrefix(tp.Topic, cfg.Delay.TopicPrefix+".") {
				// Answered once released: the client gives up at its deadline first.
				cluster.SleepControl(func() { <-held })
				break
			}
		}
		return nil, nil, false
	})
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", failTens)
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	t.Cleanup(release) // before the node stops
	client := kasyncv1.NewNodeClient(plainConn(t, nd.GRPCAddr()))

	hang.Store(true)
	// Below the node's own 2s bound on the broker: the caller's deadline is what counts.
	st, err := getStatus(t, client, 1800*time.Millisecond)
	hang.Store(false)
	release()
	require.NoError(t, err, "an answer, not DEADLINE_EXCEEDED")
	require.Contains(t, strings.Join(st.Problems, "\n"), "delay rungs: depth unknown", "what did not arrive is named")
	require.Len(t, st.Rungs, len(cfg.Delay.Rungs))
	for _, r := range st.Rungs {
		require.Nil(t, r.Depth, "unknown, not zero: %s", r.Name)
	}
	require.Equal(t, "fn", st.Functions[0].Name, "the node's own facts are there")

	schedOnly := start(t, node.Options{Config: testConfig(t, []string{"127.0.0.1:1"}, "unused"), Roles: node.Roles{Scheduler: true}})
	st, err = getStatus(t, kasyncv1.NewNodeClient(plainConn(t, schedOnly.GRPCAddr())), time.Second)
	require.NoError(t, err)
	require.Equal(t, []string{"scheduler"}, st.Roles)
	require.Len(t, st.Functions, 1)
	require.True(t, st.Functions[0].Scheduled)
	require.Empty(t, st.Tailers)
	require.Empty(t, st.Rungs)
	require.Empty(t, st.NotReady, "a scheduler-only node needs no Kafka")
}
