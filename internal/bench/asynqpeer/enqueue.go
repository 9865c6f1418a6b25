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

// paceTick is how often a paced enqueue releases the tasks that fell due.
const paceTick = time.Millisecond

// enqueueConfig is what `enqueue` runs with.
type enqueueConfig struct {
	RedisAddr string
	N         int64
	Size      int
	// Rate is tasks per second over all clients; 0 is as fast as the clients go.
	Rate    float64
	Queue   string
	Clients int
}

// enqueueReport is the line `enqueue` prints when it is done.
type enqueueReport struct {
	Enqueued int64   `json:"enqueued"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate"`
}

func parseEnqueue(args []string, stderr io.Writer) (enqueueConfig, error) {
	var c enqueueConfig
	fs := newFlagSet("enqueue", stderr)
	fs.StringVar(&c.RedisAddr, "redis", "", "Redis address host:port (required)")
	fs.Int64Var(&c.N, "n", 0, "tasks to enqueue (required)")
	fs.IntVar(&c.Size, "size", payloadMin, "payload bytes (≥ 16: produce stamp + index)")
	fs.Float64Var(&c.Rate, "rate", 0, "tasks per second over all clients; 0 is as fast as possible")
	fs.StringVar(&c.Queue, "queue", "default", "Asynq queue to enqueue to")
	fs.IntVar(&c.Clients, "clients", 8, "concurrent enqueueing goroutines (one shared asynq.Client)")
	if err := parseArgs(fs, args); err != nil {
		return c, err
	}
	return c, c.validate()
}

// validate reports every problem at once.
func (c enqueueConfig) validate() error {
	var errs []error
	errs = append(errs, checkRedis(c.RedisAddr), checkN(c.N), checkQueue(c.Queue))
	if c.Size < payloadMin {
		errs = append(errs, fmt.Errorf("--size must be ≥ %d bytes (got %d): the payload carries an 8-byte stamp and an 8-byte index, e.g. --size 100", payloadMin, c.Size))
	}
	if !(c.Rate >= 0) { // also refuses NaN
		errs = append(errs, fmt.Errorf("--rate must be ≥ 0 tasks/s (got %v): 0 enqueues as fast as possible, e.g. --rate 5000", c.Rate))
	}
	if c.Clients < 1 {
		errs = append(errs, fmt.Errorf("--clients must be ≥ 1 (got %d), e.g. --clients 8", c.Clients))
	}
	return errors.Join(errs...)
}

// due is how many of n tasks are due after elapsed at rate per second: task i is due at
// i/rate, so the first is due at once. rate 0 makes all of them due.
func due(elapsed time.Duration, rate float64, n int64) int64 {
	if rate <= 0 {
		return n
	}
	return min(n, int64(elapsed.Seconds()*rate)+1)
}

// enqueue puts cfg.N stamped tasks on the queue, paced when cfg.Rate > 0, and says how
// long it took. It fails on the first task Asynq refuses, or when ctx ends.
func enqueue(ctx context.Context, cfg enqueueConfig, logger *slog.Logger) (enqueueReport, error) {
	if err := cfg.validate(); err != nil {
		return enqueueReport{}, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, PoolSize: cfg.Clients + 4})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return enqueueReport{}, fmt.Errorf("enqueue: reaching Redis at --redis %s (is redis-server running there?): %w", cfg.RedisAddr, err)
	}
	client := asynq.NewClientFromRedisClient(rdb) // closed with rdb

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	indexes := make(chan int64, cfg.Clients)
	var enqueued atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() {
			payload := make([]byte, cfg.Size) // Enqueue copies it into the encoded message
			for i := range indexes {
				benchproto.Stamp(payload, time.Now())
				binary.BigEndian.PutUint64(payload[benchproto.StampSize:], uint64(i))
				task := asynq.NewTask(TaskType, payload)
				if _, err := client.EnqueueContext(ctx, task, asynq.Queue(cfg.Queue), asynq.MaxRetry(0)); err != nil {
					cancel(fmt.Errorf("enqueue: task %d to queue %q: %w", i, cfg.Queue, err))
					return
				}
				enqueued.Add(1)
			}
		})
	}

	start := time.Now()
	feed(ctx, indexes, cfg.N, cfg.Rate)
	wg.Wait()
	took := time.Since(start)
	if n := enqueued.Load(); n < cfg.N {
		return enqueueReport{}, fmt.Errorf("enqueue: %d of %d tasks enqueued: %w", n, cfg.N, context.Cause(ctx))
	}
	rep := enqueueReport{Enqueued: cfg.N, Seconds: took.Seconds(), Rate: float64(cfg.N) / took.Seconds()}
	logger.Info("enqueue: done", "n", rep.Enqueued, "seconds", rep.Seconds, "rate_per_s", int64(rep.Rate),
		"asked_rate", cfg.Rate, "clients", cfg.Clients, "queue", cfg.Queue)
	return rep, nil
}

// feed sends the indexes 0..n-1 to the clients as they fall due, then closes indexes.
// It stops early when ctx ends.
func feed(ctx context.Context, indexes chan<- int64, n int64, rate float64) {
	defer close(indexes)
	start := time.Now()
	var tick *time.Ticker
	if rate > 0 {
		tick = time.NewTicker(paceTick)
		defer tick.Stop()
	}
	for sent := int64(0); sent < n; {
		for upTo := due(time.Since(start), rate, n); sent < upTo; sent++ {
			select {
			case indexes <- sent:
			case <-ctx.Done():
				return
			}
		}
		if sent == n {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}
