package tailer_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// fixture is one topic on the test broker, a dead-letter topic and a checkpoint store.
type fixture struct {
	brokers  []string
	topic    string
	dlqTopic string
	dl       *delaystreams.DeadLetterWriter
}

func newFixture(t *testing.T, partitions int32) *fixture {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	f := &fixture{
		brokers:  brokers,
		topic:    kafkatest.NewTopic(t, brokers, partitions),
		dlqTopic: kafkatest.NewTopic(t, brokers, 1),
	}
	dl, err := delaystreams.NewDeadLetterWriter(kafkatest.Client(t, brokers), f.dlqTopic)
	require.NoError(t, err)
	f.dl = dl
	return f
}

func newStore(t *testing.T, fs vfs.FS) *checkpoint.PebbleStore {
	t.Helper()
	s, err := checkpoint.OpenPebble(checkpoint.PebbleOptions{Dir: "cp", FS: fs, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func quietLogger() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// localScheduler runs exec in-process as function "fn".
func localScheduler(t *testing.T, exec scheduler.ExecutorFunc, maxBytes int) tailer.Scheduler {
	t.Helper()
	s, err := scheduler.New(scheduler.Config{
		Functions:        []scheduler.Function{{Name: "fn", Concurrency: 512, Timeout: time.Minute, Executor: exec}},
		MaxWorkloadBytes: maxBytes,
		Logger:           quietLogger(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return scheduler.NewLocal(s, 20000)
}

// running is a tailer running in the background.
type running struct {
	*tailer.Tailer
	cancel context.CancelFunc
	errc   chan error
}

func (f *fixture) config(name string, sched tailer.Scheduler, store checkpoint.Store) tailer.Config {
	return tailer.Config{
		Name:           name,
		Topic:          f.topic,
		Function:       "fn",
		Group:          "g-" + f.topic,
		ClientOpts:     []kgo.Opt{kgo.SeedBrokers(f.brokers...)},
		CommitInterval: 20 * time.Millisecond,
		RevokeTimeout:  500 * time.Millisecond,
		Backoff:        []time.Duration{5 * time.Millisecond},
		Scheduler:      sched,
		Store:          store,
		DeadLetter:     f.dl,
		Logger:         quietLogger(),
	}
}

func start(t *testing.T, cfg tailer.Config) *running {
	t.Helper()
	tl, err := tailer.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Tailer: tl, cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- tl.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.errc:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("tailer did not stop within 30s")
	}
}

// waitCommitted waits until the group's committed offsets satisfy ok.
func (f *fixture) waitCommitted(t *testing.T, group string, ok func(committed map[int32]int64) bool) map[int32]int64 {
	t.Helper()
	var last map[int32]int64
	deadline := time.Now().Add(90 * time.Second)
	for {
		last = kafkatest.CommittedOffsets(t, f.brokers, group, f.topic)
		if ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: committed offsets never got there in 90s; last seen %v (end %v)",
				group, last, kafkatest.EndOffsets(t, f.brokers, f.topic))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// atEnd reports whether committed equals the topic's end offsets.
func atEnd(end map[int32]int64) func(map[int32]int64) bool {
	return func(committed map[int32]int64) bool {
		for p, e := range end {
			if committed[p] != e {
				return false
			}
		}
		return true
	}
}

// executions counts how often each workload ran, by payload.
type executions struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *executions) add(payload string) {
	e.mu.Lock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	e.n[payload]++
	e.mu.Unlock()
}

func (e *executions) snapshot() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.n))
	for k, v := range e.n {
		out[k] = v
	}
	return out
}

// partitionOffset parses a workload ID "<topic>/<partition>/<offset>".
func partitionOffset(t testing.TB, id string) (int32, int64) {
	parts := strings.Split(id, "/")
	require.Len(t, parts, 3, "workload id %q", id)
	p, err := strconv.ParseInt(parts[1], 10, 32)
	require.NoError(t, err)
	o, err := strconv.ParseInt(parts[2], 10, 64)
	require.NoError(t, err)
	return int32(p), o
}

func valueRecord(topic string) func(i int) *kgo.Record {
	return func(i int) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte("k" + strconv.Itoa(i%97)), Value: []byte("e-" + strconv.Itoa(i))}
	}
}

// deadLetters reads every record of the dead-letter topic.
func (f *fixture) deadLetters(t *testing.T, want int) []*kgo.Record {
	t.Helper()
	cl := kafkatest.Client(t, f.brokers, kgo.ConsumeTopics(f.dlqTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		out = append(out, fs.Records()...)
	}
	require.Len(t, out, want, "dead letters")
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
