package node_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	"github.com/kasync/kasync/internal/testutil"
	kruntime "github.com/kasync/kasync/runtime"
)

// testConfig is a valid config for one tailer of fn on topic, on loopback port 0, with
// a millisecond delay ladder (20ms, 50ms, 200ms) on topics of its own.
func testConfig(t testing.TB, brokers []string, topic string, edit ...func(*config.Config)) *config.Config {
	t.Helper()
	cfg := &config.Config{
		Kafka: config.Kafka{Brokers: brokers},
		Node:  config.Node{DataDir: t.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0"},
		Delay: config.Delay{
			TopicPrefix: kafkatest.TopicName(t),
			Rungs:       []config.Duration{config.Duration(20 * time.Millisecond), config.Duration(50 * time.Millisecond), config.Duration(200 * time.Millisecond)},
			Tolerance:   config.Duration(5 * time.Millisecond),
			Partitions:  2,
		},
		DeadLetter: config.DeadLetter{Topic: kafkatest.TopicName(t) + "-dlq"},
		Checkpoint: config.Checkpoint{Interval: config.Duration(20 * time.Millisecond)},
		Functions: []config.Function{{
			Name: "fn", Concurrency: 256, Timeout: config.Duration(30 * time.Second),
			Retry: config.Retry{MaxAttempts: 3, Backoff: []config.Duration{config.Duration(10 * time.Millisecond)}},
		}},
		Tailers: []config.Tailer{{Name: "t", Topic: topic, Function: "fn", RevokeTimeout: config.Duration(time.Second)}},
	}
	for _, e := range edit {
		e(cfg)
	}
	cfg.WithDefaults()
	require.NoError(t, cfg.Validate())
	return cfg
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// counter counts executions per payload.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) fn(_ context.Context, t *kruntime.Task) error {
	if rand.IntN(16) == 0 { // some finish late: completions arrive out of order
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
	}
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[string(t.Payload)]++
	c.mu.Unlock()
	return nil
}

func (c *counter) requireExactlyOnce(t *testing.T, n int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Len(t, c.n, n, "every event ran")
	for i := range n {
		require.Equal(t, 1, c.n["e-"+strconv.Itoa(i)], "event e-%d ran exactly once", i)
	}
}

func produce(t testing.TB, brokers []string, topic string, n int) map[int32]int64 {
	kafkatest.ProduceN(t, brokers, topic, n, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte("k" + strconv.Itoa(i%101)), Value: []byte("e-" + strconv.Itoa(i))}
	})
	return kafkatest.EndOffsets(t, brokers, topic)
}

func waitCommitted(t testing.TB, brokers []string, group, topic string, end map[int32]int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		c := kafkatest.CommittedOffsets(t, brokers, group, topic)
		for p, e := range end {
			if c[p] != e {
				return false
			}
		}
		return true
	}, 2*time.Minute, 25*time.Millisecond, "the group's committed offsets reach the log end")
}

// started is a node running until stop.
type started struct {
	*node.Node
	cancel context.CancelFunc
}

func start(t testing.TB, opts node.Options) *started {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := node.Start(ctx, opts)
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	s := &started{Node: n, cancel: cancel}
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *started) stop(t testing.TB) {
	t.Helper()
	s.cancel()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("node did not stop within 30s")
	}
}

// TestGRPCPath: 100,000 events over 12 partitions from a tailer node, over gRPC on a
// real TCP listener, to a scheduler node, to an SDK worker on its own connection. Every
// event runs exactly once and the committed watermarks reach the log end.
func TestGRPCPath(t *testing.T) {
	t.Parallel()
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 12)
	end := produce(t, brokers, topic, n)
	cfg := testConfig(t, brokers, topic)

	runSplit(t, cfg, brokers, topic, end, n, kruntime.WorkerConfig{Capacity: 256})
}

// runSplit runs cfg's tailer as a tailer-only node pushing to a scheduler-only node,
// with function "fn" on an SDK worker (wc, completed with the address, a registry and
// a quiet logger), until the group commits end; then every event ran exactly once.
func runSplit(t *testing.T, cfg *config.Config, brokers []string, topic string, end map[int32]int64, n int, wc kruntime.WorkerConfig) {
	t.Helper()
	sched := start(t, node.Options{Config: cfg, Roles: node.Roles{Scheduler: true}})
	var runs counter
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", runs.fn)
	wc.Addrs, wc.Registry, wc.Logger = []string{sched.GRPCAddr()}, reg, quiet()
	w, err := kruntime.NewWorker(wc)
	require.NoError(t, err)
	wctx, stopWorker := context.WithCancel(context.Background())
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()

	tail := start(t, node.Options{Config: cfg, Roles: node.Roles{Tailer: true}, SchedulerAddr: sched.GRPCAddr()})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	tail.stop(t)
	stopWorker()
	require.NoError(t, <-werr)
	sched.stop(t)
	runs.requireExactlyOnce(t, n)
}

// TestInProcessRegistryPath: one node with every role, the function in its in-process
// registry, and a clean stop that leaves the checkpoint at the log end.
func TestInProcessRegistryPath(t *testing.T) {
	t.Parallel()
	const n = 10_000
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 4)
	end := produce(t, brokers, topic, n)
	cfg := testConfig(t, brokers, topic)
	var runs counter
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", runs.fn)

	nd := start(t, node.Options{Config: cfg, Registry: reg})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	nd.stop(t)
	runs.requireExactlyOnce(t, n)
}

// TestHTTPFunction: a function with a url runs over HTTP with the CloudEvents headers of
// DESIGN.md; a 429 is retried (attempt 2 through the ladder) and a 400 is dead-lettered
// as fatal, with the status in the error.
func TestHTTPFunction(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	const n = 20
	end := produce(t, brokers, topic, n)

	var mu sync.Mutex
	seen := map[string][]http.Header{} // payload → headers of each request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[string(body)] = append(seen[string(body)], r.Header.Clone())
		tries := len(seen[string(body)])
		mu.Unlock()
		switch {
		case string(body) == "e-3" && tries == 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case string(body) == "e-4":
			http.Error(w, "no such account", http.StatusBadRequest)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	cfg := testConfig(t, brokers, topic, func(c *config.Config) { c.Functions[0].URL = srv.URL + "/fn" })

	nd := start(t, node.Options{Config: cfg, Logger: quiet()})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	letters := deadLetters(t, brokers, cfg, 1)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen["e-3"]) == 2
	}, 30*time.Second, 5*time.Millisecond, "e-3 is retried after its 429")
	limit, err := strconv.Atoi(scrape(t, nd.HTTPAddr(), `kasync_concurrency_limit{function="fn"}`))
	require.NoError(t, err, "the adaptive limit is exported")
	require.Positive(t, limit)
	require.LessOrEqual(t, limit, cfg.Functions[0].Concurrency)
	nd.stop(t)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, n, "every event was POSTed")
	for payload, hs := range seen {
		h := hs[0]
		require.Equal(t, "1.0", h.Get("ce-specversion"), payload)
		require.Equal(t, "kafka://"+topic, h.Get("ce-source"), payload)
		require.Equal(t, "kasync.fn", h.Get("ce-type"), payload)
		require.Equal(t, "1", h.Get("ce-attempt"), payload)
		require.True(t, strings.HasPrefix(h.Get("ce-id"), topic+"/"), "ce-id %q is <topic>/<partition>/<offset>", h.Get("ce-id"))
		require.NotEmpty(t, h.Get("ce-partitionkey"), payload)
		require.NotEmpty(t, h.Get("ce-time"), payload)
	}
	retry := seen["e-3"]
	require.Equal(t, "2", retry[1].Get("ce-attempt"), "the retry is attempt 2")
	require.Equal(t, retry[0].Get("ce-id"), retry[1].Get("ce-id"), "ce-id is stable across attempts")
	require.Len(t, seen["e-4"], 1, "a 400 is not retried")
	require.Equal(t, "e-4", string(letters[0].Value))
	require.Equal(t, "fatal", header(letters[0], delaystreams.HeaderReason))
	require.Contains(t, header(letters[0], delaystreams.HeaderError), "400")
}

// TestTenantQuotaIsWired: a tenant's concurrency quota bounds its functions, below
// their own concurrency.
func TestTenantQuotaIsWired(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 4)
	const n = 200
	end := produce(t, brokers, topic, n)
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.Tenants = []config.Tenant{{Name: "batch", Weight: 1, Concurrency: 3}}
		c.Functions[0].Tenant = "batch"
	})
	var running, most atomic.Int64
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(context.Context, *kruntime.Task) error {
		now := running.Add(1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		time.Sleep(time.Millisecond)
		running.Add(-1)
		return nil
	})
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	nd.stop(t)
	require.Equal(t, int64(3), most.Load(), "the tenant's quota of 3, not the function's concurrency of %d", cfg.Functions[0].Concurrency)
}

// TestKeyOrderingIsWired: a tailer with ordering: key keeps a key's records in order
// across retries, retried in place (nothing is written to a rung).
func TestKeyOrderingIsWired(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	const n = 30
	kafkatest.ProduceN(t, brokers, topic, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte("k" + strconv.Itoa(i%3)), Value: []byte("e-" + strconv.Itoa(i))}
	})
	end := kafkatest.EndOffsets(t, brokers, topic)
	cfg := testConfig(t, brokers, topic, func(c *config.Config) { c.Tailers[0].Ordering = config.OrderingKey })

	var mu sync.Mutex
	runs := map[string][]string{} // key → payloads in the order they ran, failures included
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(_ context.Context, task *kruntime.Task) error {
		mu.Lock()
		runs[string(task.Key)] = append(runs[string(task.Key)], string(task.Payload))
		mu.Unlock()
		if i, _ := strconv.Atoi(strings.TrimPrefix(string(task.Payload), "e-")); i%7 == 0 && task.Attempt < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	nd.stop(t)

	mu.Lock()
	defer mu.Unlock()
	for k := range 3 {
		var want []string
		for i := k; i < n; i += 3 {
			e := "e-" + strconv.Itoa(i)
			want = append(want, e)
			if i%7 == 0 {
				want = append(want, e, e) // two failed attempts, then the success
			}
		}
		require.Equal(t, want, runs["k"+strconv.Itoa(k)], "key k%d", k)
	}
}

// TestStartFailureReleasesEverything: when a later part cannot start (the HTTP port is
// taken), Start names the field and releases what it had already bound and started;
// the same address can then be used again. goleak in TestMain catches a leak.
func TestStartFailureReleasesEverything(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	grpcAddr := testutil.FreeAddr(t)

	cfg := testConfig(t, brokers, kafkatest.NewTopic(t, brokers, 1))
	cfg.Node.GRPCListen = grpcAddr
	cfg.Node.HTTPListen = taken.Addr().String()
	_, err = node.Start(context.Background(), node.Options{Config: cfg, Logger: quiet()})
	require.ErrorContains(t, err, "node.http_listen")

	cfg.Node.HTTPListen = "127.0.0.1:0"
	n := start(t, node.Options{Config: cfg, Roles: node.Roles{Scheduler: true}})
	require.Equal(t, grpcAddr, n.GRPCAddr(), "the failed start released the gRPC listener")
}

// TestMissingSourceTopicIsReported: a tailer whose topic does not exist does not wait in
// silence; the node names the field and the topic at start.
func TestMissingSourceTopicIsReported(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	cfg := testConfig(t, brokers, "no-such-topic-"+kafkatest.TopicName(t))
	var logs testutil.Buffer
	start(t, node.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.Contains(t, logs.String(), "source topic does not exist")
	require.Contains(t, logs.String(), "field=tailers[0].topic")
}

// TestUnfitRungTopicIsRefused: a rung topic that could delete a waiting retry (retention
// shorter than kasync needs) stops the node at start, with the topic, the config at
// fault and the command that fixes it.
func TestUnfitRungTopicIsRefused(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	cfg := testConfig(t, brokers, kafkatest.NewTopic(t, brokers, 1))
	rung := delaystreams.RungTopic(cfg.Delay.TopicPrefix, cfg.Delay.Rungs[0].Std())
	short := "1000"
	_, err := kafkatest.Admin(t, brokers).CreateTopic(context.Background(), 1, -1, map[string]*string{"retention.ms": &short}, rung)
	require.NoError(t, err)
	_, err = node.Start(context.Background(), node.Options{Config: cfg, Logger: quiet()})
	require.Error(t, err)
	require.ErrorContains(t, err, "topic "+rung)
	require.ErrorContains(t, err, "retention.ms is 1000")
	require.ErrorContains(t, err, "kafka-configs")
}
