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
	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// fixture is one topic on the test broker, a millisecond delay ladder with its rung
// topics, a dead-letter topic, and the router that writes to them.
type fixture struct {
	t        *testing.T
	brokers  []string
	topic    string
	prefix   string // rung topics: delaystreams.RungTopic(prefix, rung)
	rungs    []time.Duration
	dlqTopic string
	router   *delaystreams.Router
}

// fixtureMaxDelay caps delays and due times read from headers.
const fixtureMaxDelay = 300 * time.Millisecond

// fixtureRetry is the retry policy of function "fn": 3 attempts, 20ms apart.
var fixtureRetry = delaystreams.RetryPolicy{MaxAttempts: 3, Backoff: []time.Duration{20 * time.Millisecond}}

func newFixture(t *testing.T, partitions int32) *fixture {
	t.Helper()
	return newFixtureOn(t, kafkatest.Brokers(t), partitions)
}

// newFixtureOn is newFixture on the given brokers, such as a kfake cluster of the
// test's own whose faults it controls.
func newFixtureOn(t *testing.T, brokers []string, partitions int32) *fixture {
	t.Helper()
	prefix := kafkatest.TopicName(t)
	f := &fixture{
		t:        t,
		brokers:  brokers,
		topic:    kafkatest.NewTopic(t, brokers, partitions),
		prefix:   prefix,
		rungs:    []time.Duration{20 * time.Millisecond, 50 * time.Millisecond},
		dlqTopic: prefix + "-dlq",
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	adm := kafkatest.Admin(t, brokers)
	require.NoError(t, delaystreams.EnsureTopics(ctx, adm, delaystreams.TopicPlan{
		Prefix: prefix, Rungs: f.rungs, DeadLetter: f.dlqTopic, Partitions: 2}, quietLogger()))
	t.Cleanup(func() {
		topics := []string{f.dlqTopic}
		for _, r := range f.rungs {
			topics = append(topics, delaystreams.RungTopic(prefix, r))
		}
		_, _ = adm.DeleteTopics(context.Background(), topics...)
	})
	ladder, err := delaystreams.NewLadder(f.rungs, 5*time.Millisecond)
	require.NoError(t, err)
	f.router, err = delaystreams.NewRouter(kafkatest.Client(t, brokers, kafka.ProducerOpts()...), delaystreams.RouterConfig{
		Ladder: ladder, TopicPrefix: prefix, DeadLetter: f.dlqTopic,
		Policies: map[string]delaystreams.RetryPolicy{"fn": fixtureRetry},
		MaxDelay: fixtureMaxDelay,
	})
	require.NoError(t, err)
	return f
}

// sourceReader reads the fixture's topic for function.
func (f *fixture) sourceReader(t *testing.T, function string) tailer.Reader {
	t.Helper()
	r, err := delaystreams.NewSourceReader(f.router, function, 0)
	require.NoError(t, err)
	return r
}

// startRungReaders runs a delay reader for every rung of the fixture's ladder.
func (f *fixture) startRungReaders(t *testing.T, sched tailer.Scheduler, store checkpoint.Store) []*running {
	t.Helper()
	var out []*running
	for i := range f.rungs {
		reader, err := delaystreams.NewRungReader(f.router, i, quietLogger())
		require.NoError(t, err)
		cfg := f.config("rung-"+strconv.Itoa(i), sched, store)
		cfg.Topic, cfg.Group, cfg.Function, cfg.Reader = reader.Topic(), reader.Topic(), "", reader
		out = append(out, start(t, cfg))
	}
	return out
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
	t := f.t
	return tailer.Config{
		Name:           name,
		Topic:          f.topic,
		Function:       "fn",
		Group:          f.group(),
		ClientOpts:     []kgo.Opt{kgo.SeedBrokers(f.brokers...)},
		CommitInterval: 20 * time.Millisecond,
		RevokeTimeout:  500 * time.Millisecond,
		StormRetryMin:  5 * time.Millisecond,
		StormRetryMax:  50 * time.Millisecond,
		Scheduler:      sched,
		Store:          store,
		Reader:         f.sourceReader(t, "fn"),
		Producer:       f.router,
		Logger:         quietLogger(),
	}
}

// group is the consumer group of the fixture's source tailers.
func (f *fixture) group() string { return "g-" + f.topic }

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
