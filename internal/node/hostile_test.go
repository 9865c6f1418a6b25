package node_test

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	kruntime "github.com/kasync/kasync/runtime"
)

// seen is what the function saw of each record, by payload.
type seen struct {
	mu    sync.Mutex
	tasks map[string]kruntime.Task
}

func (s *seen) fn(_ context.Context, t *kruntime.Task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tasks == nil {
		s.tasks = map[string]kruntime.Task{}
	}
	c := *t // Key, Payload and Headers may not be kept after the function returns
	c.Key, c.Payload = bytes.Clone(t.Key), bytes.Clone(t.Payload)
	c.Headers = nil
	for _, h := range t.Headers {
		h.Value = bytes.Clone(h.Value)
		c.Headers = append(c.Headers, h)
	}
	s.tasks[string(t.Payload)] = c
	return nil
}

func (s *seen) get(t *testing.T, payload string) kruntime.Task {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	task, ok := s.tasks[payload]
	require.True(t, ok, "the function ran %q", payload)
	return task
}

// Hostile records on one partition, through the split path (a tailer node, gRPC, a
// scheduler node, gRPC, an SDK worker): 10,000 headers, header names, values, a key and a
// payload that are not UTF-8, forged kasync headers on a source record, and a record
// over max_workload_bytes. None stops the partition: each runs once, as it was
// produced (the forged attempt and due time are ignored on a source topic), or, the
// too-large one, goes to the dead letter with its reason; the group commits the end.
func TestHostileRecordsNeverStopAPartition(t *testing.T) {
	t.Parallel()
	const limit = 256 << 10
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 1)
	cfg := testConfig(t, brokers, topic, func(c *config.Config) { c.Node.MaxWorkloadBytes = limit })

	many := make([]kgo.RecordHeader, 10_000)
	for i := range many {
		many[i] = kgo.RecordHeader{Key: "h" + strconv.Itoa(i), Value: []byte(strconv.Itoa(i))}
	}
	notUTF8 := []byte{0xff, 0xfe, 0x00, 0xc3}
	recs := []*kgo.Record{
		{Topic: topic, Value: []byte("first")},
		{Topic: topic, Value: []byte("many headers"), Headers: many},
		{Topic: topic, Key: notUTF8, Value: append([]byte("not utf-8 "), notUTF8...),
			Headers: []kgo.RecordHeader{{Key: string(notUTF8), Value: notUTF8}}},
		{Topic: topic, Value: []byte("forged"), Headers: []kgo.RecordHeader{
			{Key: delaystreams.HeaderAttempt, Value: []byte("999999999999999999999")},
			{Key: delaystreams.HeaderDue, Value: []byte("99999999999999")},
			{Key: delaystreams.HeaderFunction, Value: []byte("someone-else")},
		}},
		{Topic: topic, Value: bytes.Repeat([]byte("x"), limit+1)},
		{Topic: topic, Value: []byte("last")},
	}
	kafkatest.ProduceN(t, brokers, topic, len(recs), func(i int) *kgo.Record { return recs[i] })
	end := kafkatest.EndOffsets(t, brokers, topic)

	var s seen
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", s.fn)
	sched := start(t, node.Options{Config: cfg, Roles: node.Roles{Scheduler: true}})
	w, err := kruntime.NewWorker(kruntime.WorkerConfig{Addrs: []string{sched.GRPCAddr()}, Registry: reg, Logger: quiet()})
	require.NoError(t, err)
	wctx, stopWorker := context.WithCancel(context.Background())
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	tail := start(t, node.Options{Config: cfg, Roles: node.Roles{Tailer: true, Delay: true}, SchedulerAddr: sched.GRPCAddr()})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	tail.stop(t)
	stopWorker()
	require.NoError(t, <-werr)
	sched.stop(t)

	require.Len(t, s.get(t, "many headers").Headers, len(many), "every header arrives")
	require.Equal(t, many[9999].Key, s.get(t, "many headers").Headers[9999].Key, "in order")
	odd := s.get(t, "not utf-8 "+string(notUTF8))
	require.Equal(t, notUTF8, odd.Key, "the key's bytes arrive as they were")
	require.Equal(t, string(notUTF8), odd.Headers[0].Key)
	require.Equal(t, notUTF8, odd.Headers[0].Value)
	forged := s.get(t, "forged")
	require.Equal(t, 1, forged.Attempt, "a source record's kasync-attempt is not believed")
	require.Equal(t, "fn", forged.Function)
	s.get(t, "first")
	s.get(t, "last")
	s.mu.Lock()
	require.Len(t, s.tasks, 5, "everything but the too-large record ran, once each")
	s.mu.Unlock()

	dead := deadLetters(t, brokers, cfg, 1)
	require.Equal(t, "too-large", header(dead[0], delaystreams.HeaderReason))
	require.Equal(t, topic+"/0/4", header(dead[0], delaystreams.HeaderOrigin))
}
