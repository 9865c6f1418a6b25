package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/kasync/kasync/internal/bench/benchproto"
)

// payloadMin is the smallest payload the peer understands: the produce stamp, then the
// task's index, 8 bytes big-endian.
const payloadMin = benchproto.StampSize + 8

// asynqShutdownTimeout is how long Asynq waits for running handlers at shutdown. No-op
// handlers return at once; Asynq's default of 8s would only slow the end of a run.
const asynqShutdownTimeout = time.Second

// serveConfig is what `serve` runs with.
type serveConfig struct {
	RedisAddr     string
	N             int64
	Concurrency   int
	Queue         string
	ProgressEvery time.Duration
	// Stall ends the run when no new task started for this long; it is checked at each
	// progress tick.
	Stall time.Duration
	// TaskCheckInterval is Asynq's pause after finding the queue empty (its own default is
	// 1s, meant to spare Redis); a short one keeps Asynq's latency from being a polling
	// artefact when the producer is slower than the server.
	TaskCheckInterval time.Duration
	// Servers is how many asynq.Server share the process and the concurrency. Each has
	// one dequeue loop, which fetches one task per Redis round trip.
	Servers int
}

func parseServe(args []string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&c.RedisAddr, "redis", "", "Redis address host:port (required)")
	fs.Int64Var(&c.N, "n", 0, "distinct tasks to wait for (required)")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "Asynq server concurrency (workers)")
	fs.StringVar(&c.Queue, "queue", "default", "Asynq queue to serve")
	fs.DurationVar(&c.ProgressEvery, "progress-every", 100*time.Millisecond, "interval between progress events")
	fs.DurationVar(&c.Stall, "stall", 30*time.Second, "fail when no new task starts for this long")
	fs.DurationVar(&c.TaskCheckInterval, "task-check-interval", time.Millisecond,
		"Asynq Config.TaskCheckInterval: pause after finding the queue empty")
	fs.IntVar(&c.Servers, "servers", 1, "asynq.Server instances in this process, sharing --concurrency")
	if err := parseArgs(fs, args); err != nil {
		return c, err
	}
	return c, c.validate()
}

// validate reports every problem at once.
func (c serveConfig) validate() error {
	var errs []error
	errs = append(errs, checkRedis(c.RedisAddr), checkN(c.N), checkQueue(c.Queue))
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency must be ≥ 1 (got %d), e.g. --concurrency 64", c.Concurrency))
	}
	if c.Servers < 1 || (c.Concurrency >= 1 && c.Servers > c.Concurrency) {
		errs = append(errs, fmt.Errorf("--servers must be between 1 and --concurrency (got %d), e.g. --servers 1", c.Servers))
	}
	errs = append(errs,
		checkPositiveDuration("progress-every", c.ProgressEvery, "100ms"),
		checkPositiveDuration("stall", c.Stall, "30s"),
		checkPositiveDuration("task-check-interval", c.TaskCheckInterval, "1ms"))
	return errors.Join(errs...)
}

// tally counts the starts of tasks; it is safe for concurrent use.
type tally struct {
	want int64
	done chan struct{} // closed once want distinct tasks started and returned

	started  atomic.Int64 // distinct starts, read by the progress loop
	returned atomic.Int64 // distinct starts whose handler returned
	badOnce  sync.Once

	mu         sync.Mutex
	seen       map[uint64]struct{}
	latency    benchproto.Histogram
	first      int64
	last       int64
	duplicates int64
	malformed  int64
}

func newTally(want int64) *tally {
	return &tally{
		want: want,
		done: make(chan struct{}),
		seen: make(map[uint64]struct{}, min(want, 1<<24)),
	}
}

// start records a task starting at now. It reports whether the start counts (the
// task's first), and whether the payload was too short to carry a stamp and an index.
func (t *tally) start(payload []byte, now time.Time) (counted, malformed bool) {
	stamp, ok := benchproto.Stamped(payload)
	if !ok || len(payload) < payloadMin {
		t.mu.Lock()
		t.malformed++
		t.mu.Unlock()
		return false, true
	}
	idx := binary.BigEndian.Uint64(payload[benchproto.StampSize:])
	ns := now.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.seen[idx]; dup {
		t.duplicates++
		return false, false
	}
	t.seen[idx] = struct{}{}
	t.latency.Record(now.Sub(stamp))
	if len(t.seen) == 1 || ns < t.first {
		t.first = ns
	}
	t.last = max(t.last, ns)
	t.started.Add(1)
	return true, false
}

// returnedOne records that the handler of a counted start returned.
func (t *tally) returnedOne() {
	if t.returned.Add(1) == t.want {
		close(t.done)
	}
}

// result is what was counted so far.
func (t *tally) result() *benchproto.Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	lat := new(benchproto.Histogram)
	lat.Merge(&t.latency)
	return &benchproto.Result{
		Count:      int64(len(t.seen)),
		FirstStart: t.first,
		LastStart:  t.last,
		Latency:    lat,
		Duplicates: t.duplicates,
	}
}

// handler is the no-op task function: it only counts its start.
func (t *tally) handler(logger *slog.Logger) asynq.HandlerFunc {
	return func(_ context.Context, task *asynq.Task) error {
		counted, malformed := t.start(task.Payload(), time.Now())
		if malformed {
			t.badOnce.Do(func() {
				logger.Warn("serve: ignoring tasks whose payload is shorter than the stamp and index; enqueue them with --size ≥ 16",
					"payload_bytes", len(task.Payload()), "min", payloadMin)
			})
		}
		if counted {
			t.returnedOne()
		}
		return nil
	}
}

// serve runs an Asynq server until cfg.N distinct tasks started, writing events to
// events, and returns the result it wrote last. It shuts the server down before
// returning, on every path.
func serve(ctx context.Context, cfg serveConfig, events *benchproto.Writer, logger *slog.Logger) (*benchproto.Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, PoolSize: cfg.Concurrency + 16*cfg.Servers})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("serve: reaching Redis at --redis %s (is redis-server running there?): %w", cfg.RedisAddr, err)
	}
	t := newTally(cfg.N)
	mux := asynq.NewServeMux()
	mux.Handle(TaskType, t.handler(logger))
	shutdown, err := startServers(rdb, cfg, mux, logger)
	defer shutdown() // a no-op after the explicit calls below
	if err != nil {
		return nil, err
	}
	logger.Info("serve: Asynq started", "redis", cfg.RedisAddr, "queue", cfg.Queue,
		"n", cfg.N, "concurrency", cfg.Concurrency, "servers", cfg.Servers)
	if err := events.Write(benchproto.Event{Event: benchproto.EventReady}); err != nil {
		return nil, fmt.Errorf("serve: writing the ready event: %w", err)
	}

	tick := time.NewTicker(cfg.ProgressEvery)
	defer tick.Stop()
	lastDone, lastChange := int64(0), time.Now()
	for {
		select {
		case <-t.done:
			shutdown()
			res := t.result()
			if err := events.Write(benchproto.Event{Event: benchproto.EventResult, Result: res}); err != nil {
				return nil, fmt.Errorf("serve: writing the result event: %w", err)
			}
			logger.Info("serve: done", "count", res.Count, "rate_per_s", int64(res.Rate()),
				"p50", res.Latency.Quantile(0.5), "p99", res.Latency.Quantile(0.99), "duplicates", res.Duplicates)
			return res, nil
		case <-ctx.Done():
			shutdown()
			return nil, fmt.Errorf("serve: stopped after %d of %d tasks started: %w",
				t.started.Load(), cfg.N, context.Cause(ctx))
		case now := <-tick.C:
			done := t.started.Load()
			if err := events.Write(benchproto.Event{Event: benchproto.EventProgress, Done: done}); err != nil {
				return nil, fmt.Errorf("serve: writing a progress event: %w", err)
			}
			if done != lastDone {
				lastDone, lastChange = done, now
				continue
			}
			if now.Sub(lastChange) >= cfg.Stall {
				shutdown()
				return nil, fmt.Errorf("serve: no task started for --stall %v (%d of %d started): "+
					"enqueue more tasks to queue %q on %s, or raise --stall", cfg.Stall, done, cfg.N, cfg.Queue, cfg.RedisAddr)
			}
		}
	}
}

// startServers starts cfg.Servers Asynq servers sharing cfg.Concurrency, and returns
// the function that shuts them all down; call it even when startServers fails.
func startServers(rdb redis.UniversalClient, cfg serveConfig, h asynq.Handler, logger *slog.Logger) (shutdown func(), err error) {
	srvs := make([]*asynq.Server, cfg.Servers)
	for i := range srvs {
		srvs[i] = asynq.NewServerFromRedisClient(rdb, asynq.Config{
			Concurrency:       cfg.Concurrency/cfg.Servers + btoi(i < cfg.Concurrency%cfg.Servers),
			Queues:            map[string]int{cfg.Queue: 1},
			StrictPriority:    false,
			TaskCheckInterval: cfg.TaskCheckInterval,
			ShutdownTimeout:   asynqShutdownTimeout,
			Logger:            asynqLogger{logger},
			LogLevel:          asynq.WarnLevel,
		})
	}
	shutdown = func() {
		var wg sync.WaitGroup
		for _, srv := range srvs {
			wg.Go(srv.Shutdown) // a no-op for a server not started or already shut down
		}
		wg.Wait()
	}
	for i, srv := range srvs {
		if err := srv.Start(h); err != nil {
			return shutdown, fmt.Errorf("serve: starting Asynq server %d of %d: %w", i+1, cfg.Servers, err)
		}
	}
	return shutdown, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
