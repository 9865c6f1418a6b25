package node_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

// run is one execution of a function, as the function saw it.
type run struct {
	id         string
	attempt    int
	start, end time.Time
	ok         bool
}

// runLog records every execution, by payload.
type runLog struct {
	mu   sync.Mutex
	runs map[string][]run
}

func (l *runLog) add(payload string, r run) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runs == nil {
		l.runs = map[string][]run{}
	}
	l.runs[payload] = append(l.runs[payload], r)
}

func (l *runLog) snapshot() map[string][]run {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string][]run, len(l.runs))
	for k, v := range l.runs {
		out[k] = slices.Clone(v)
	}
	return out
}

// succeeded counts payloads with a successful run.
func (l *runLog) succeeded() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, rs := range l.runs {
		for _, r := range rs {
			if r.ok {
				n++
				break
			}
		}
	}
	return n
}

// rungRecord is what a rung record says about one waiting attempt.
type rungRecord struct {
	topic        string
	rung         time.Duration
	appended     time.Time
	origin       string
	attempt      int
	due          time.Time
	firstFailure time.Time
	err          string
}

// readRungs reads every record of the config's rung topics.
func readRungs(t testing.TB, brokers []string, cfg *config.Config) []rungRecord {
	t.Helper()
	topics := map[string]time.Duration{}
	var names []string
	for _, r := range cfg.Delay.Rungs {
		name := delaystreams.RungTopic(cfg.Delay.TopicPrefix, r.Std())
		topics[name] = r.Std()
		names = append(names, name)
	}
	var total int64
	for _, name := range names {
		for _, end := range kafkatest.EndOffsets(t, brokers, name) {
			total += end
		}
	}
	cl := kafkatest.Client(t, brokers, kgo.ConsumeTopics(names...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []rungRecord
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "reading the rung topics")
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			attempt, err := strconv.Atoi(h[delaystreams.HeaderAttempt])
			require.NoError(t, err)
			ms := func(k string) time.Time {
				v, err := strconv.ParseInt(h[k], 10, 64)
				require.NoError(t, err, "%s", k)
				return time.UnixMilli(v)
			}
			out = append(out, rungRecord{topic: r.Topic, rung: topics[r.Topic], appended: r.Timestamp,
				origin: h[delaystreams.HeaderOrigin], attempt: attempt, due: ms(delaystreams.HeaderDue),
				firstFailure: ms(delaystreams.HeaderFirstFailure), err: h[delaystreams.HeaderError]})
		})
	}
	return out
}

// deadLetters reads n records of the config's dead-letter topic, and checks there are
// no more.
func deadLetters(t *testing.T, brokers []string, cfg *config.Config, n int) []*kgo.Record {
	t.Helper()
	var total int64
	for _, end := range kafkatest.EndOffsets(t, brokers, cfg.DeadLetter.Topic) {
		total += end
	}
	require.Equal(t, int64(n), total, "dead letters")
	cl := kafkatest.Client(t, brokers, kgo.ConsumeTopics(cfg.DeadLetter.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "reading the dead letters")
		out = append(out, fs.Records()...)
	}
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

// percentile returns the p-th percentile (0..100) of ds, sorted in place.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(p/100*float64(len(ds))))]
}

// TestRetriesWalkTheLadder: event e-i fails i%4 times and then succeeds. Every event
// succeeds exactly once, at attempt i%4+1; the source partitions are checkpointed to
// their end while every retry is still pending (a failing event never holds the source
// back); each retry waits on the rungs the greedy rule picks, and never starts before
// its due time; the rung records carry the right attempt, due time, origin, first
// failure and error.
func TestRetriesWalkTheLadder(t *testing.T) {
	t.Parallel()
	const n = 400
	backoff := []time.Duration{20 * time.Millisecond, 60 * time.Millisecond, 250 * time.Millisecond}
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 4)
	end := produce(t, brokers, topic, n)
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.Functions[0].Concurrency = 2 * n // blocked retries never starve first attempts
		// 3 in 4 first attempts fail: a burst of them could trip the storm guard, whose
		// in-place retries (TestFailureStorm) would repeat attempt 1.
		c.StormGuard.Disabled = true
		c.Functions[0].Retry = config.Retry{MaxAttempts: 5, Backoff: []config.Duration{
			config.Duration(backoff[0]), config.Duration(backoff[1]), config.Duration(backoff[2])}}
	})
	gate := make(chan struct{})
	var log runLog
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(ctx context.Context, task *kruntime.Task) error {
		r := run{id: task.ID, attempt: task.Attempt, start: time.Now()}
		if task.Attempt > 1 {
			select { // retries wait until the source is checkpointed to its end
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		i, err := strconv.Atoi(strings.TrimPrefix(string(task.Payload), "e-"))
		if err != nil {
			return kruntime.Fatal(err)
		}
		r.ok = task.Attempt > i%4
		r.end = time.Now()
		log.add(string(task.Payload), r)
		if !r.ok {
			return fmt.Errorf("e-%d fails attempt %d", i, task.Attempt)
		}
		return nil
	})
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	require.Equal(t, n/4, log.succeeded(), "the source reached its end while every retry waited")
	close(gate)
	require.Eventually(t, func() bool { return log.succeeded() == n }, 2*time.Minute, 5*time.Millisecond)
	nd.stop(t)

	runs := log.snapshot()
	rungs := readRungs(t, brokers, cfg)
	// The last rung record of each (origin, attempt) holds the due time of the next attempt.
	type key struct {
		origin  string
		attempt int
	}
	chains := map[key][]rungRecord{}
	for _, r := range rungs {
		k := key{r.origin, r.attempt}
		chains[k] = append(chains[k], r)
	}
	ladder, err := delaystreams.NewLadder([]time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}, 5*time.Millisecond)
	require.NoError(t, err)
	var lateness []time.Duration
	for i := range n {
		payload := "e-" + strconv.Itoa(i)
		rs := runs[payload]
		require.Len(t, rs, i%4+1, "%s ran once per attempt", payload)
		for a, r := range rs {
			require.Equal(t, a+1, r.attempt, "%s attempts in order", payload)
			require.Equal(t, r.ok, a == i%4, "%s succeeds at its last attempt only", payload)
			require.Equal(t, rs[0].id, r.id, "the workload ID is stable across retries")
			if a == 0 {
				continue
			}
			prev := rs[a-1]
			chain := chains[key{r.id, a}]
			require.NotEmpty(t, chain, "%s attempt %d waited on a rung", payload, a)
			slices.SortFunc(chain, func(x, y rungRecord) int { return x.appended.Compare(y.appended) })
			due := chain[0].due
			b := backoff[min(a-1, len(backoff)-1)]
			require.False(t, due.Before(prev.end.Add(b*9/10).Truncate(time.Millisecond)),
				"%s attempt %d: due %s is at least the jittered backoff %s after the failure", payload, a, due, b)
			require.False(t, due.After(prev.end.Add(b*11/10+200*time.Millisecond)),
				"%s attempt %d: due %s is not much more than the backoff %s after the failure", payload, a, due, b)
			for j, c := range chain {
				require.Equal(t, due, c.due, "a hop carries the due time unchanged")
				require.WithinRange(t, c.firstFailure, rs[0].end.Truncate(time.Millisecond), rs[0].end.Add(200*time.Millisecond),
					"%s: the first failure's time travels with every retry", payload)
				require.Equal(t, fmt.Sprintf("e-%d fails attempt %d", i, a), c.err)
				// Greedy: a record never waits on a rung longer than the time left when
				// its rung was picked, except the smallest rung. The pick came after the
				// failure (first record) or after the previous rung's wait (a hop).
				pickedAfter := prev.end
				if j > 0 {
					pickedAfter = chain[j-1].appended.Add(min(chain[j-1].rung, due.Sub(chain[j-1].appended)))
				}
				left := due.Sub(pickedAfter)
				require.True(t, c.rung == ladder.Rung(0) || c.rung <= left+time.Millisecond,
					"%s attempt %d: rung %s with at most %s left", payload, a, c.rung, left)
			}
			require.False(t, r.start.Before(due), "%s attempt %d started %s before its due time", payload, a+1, due.Sub(r.start))
			lateness = append(lateness, r.start.Sub(due))
		}
	}
	t.Logf("due → start of %d retries (gate released at once after the source's end): p50 %s, p99 %s, max %s",
		len(lateness), percentile(lateness, 50), percentile(lateness, 99), percentile(lateness, 100))
	for _, tl := range nd.Tailers() {
		require.Zero(t, tl.Stats().DeadLettered, "nothing was dead-lettered")
	}
}

// TestPoisonPill: one always-failing event per 10,000 reaches the dead-letter topic
// after max_attempts, with reason exhausted, its origin and the last error; every
// other event runs exactly once.
func TestPoisonPill(t *testing.T) {
	t.Parallel()
	const n = 20_000
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 4)
	end := produce(t, brokers, topic, n)
	cfg := testConfig(t, brokers, topic)
	poison := func(payload string) bool { return mustAtoi(strings.TrimPrefix(payload, "e-"))%10_000 == 5 }
	var runs counter
	var poisonRuns atomic.Int64
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(ctx context.Context, task *kruntime.Task) error {
		if poison(string(task.Payload)) {
			poisonRuns.Add(1)
			return fmt.Errorf("poison %s attempt %d", task.Payload, task.Attempt)
		}
		return runs.fn(ctx, task)
	})
	began := time.Now()
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	t.Logf("%d events with %d poison pills checkpointed in %s", n, n/10_000, time.Since(began))
	require.Eventually(t, func() bool {
		var total int64
		for _, e := range kafkatest.EndOffsets(t, brokers, cfg.DeadLetter.Topic) {
			total += e
		}
		return total == n/10_000
	}, time.Minute, 5*time.Millisecond)
	nd.stop(t)

	require.Equal(t, int64(n/10_000*3), poisonRuns.Load(), "each pill ran max_attempts (3) times")
	for _, l := range deadLetters(t, brokers, cfg, n/10_000) {
		require.True(t, poison(string(l.Value)), "%s is a poison pill", l.Value)
		require.Equal(t, "exhausted", header(l, delaystreams.HeaderReason))
		require.Equal(t, "3", header(l, delaystreams.HeaderAttempt))
		require.Equal(t, fmt.Sprintf("poison %s attempt 3", l.Value), header(l, delaystreams.HeaderError))
		origin, err := delaystreams.ParseOrigin(header(l, delaystreams.HeaderOrigin))
		require.NoError(t, err)
		require.Equal(t, topic, origin.Topic, "the origin is the source record")
	}
	runs.mu.Lock()
	for payload, c := range runs.n {
		require.Equal(t, 1, c, "%s ran once", payload)
	}
	require.Len(t, runs.n, n-n/10_000)
	runs.mu.Unlock()
}

func mustAtoi(s string) int {
	i, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return i
}

// TestFailureStorm: while every call fails, the storm guard turns on (metric and one log
// line), at most about one window's worth of records enter the rungs, the source
// partitions pause and retry in place, and nothing is dead-lettered; once the function
// recovers, the guard turns off and every event succeeds (0 lost).
func TestFailureStorm(t *testing.T) {
	t.Parallel()
	const n, window, minOutcomes = 3000, 100, 20
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 4)
	end := produce(t, brokers, topic, n)
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.Tailers[0].MaxInFlight = window
		c.Functions[0].Retry = config.Retry{MaxAttempts: 5, Backoff: []config.Duration{config.Duration(20 * time.Millisecond)}}
		c.StormGuard = config.StormGuard{Window: config.Duration(10 * time.Second), MinOutcomes: minOutcomes, Threshold: 0.9,
			RetryMin: config.Duration(10 * time.Millisecond), RetryMax: config.Duration(100 * time.Millisecond)}
	})
	var failing atomic.Bool
	failing.Store(true)
	var ok runLog
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(_ context.Context, task *kruntime.Task) error {
		if failing.Load() {
			return errors.New("downstream is down")
		}
		ok.add(string(task.Payload), run{attempt: task.Attempt, ok: true})
		return nil
	})
	var logs testutil.Buffer
	nd := start(t, node.Options{Config: cfg, Registry: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	source := nd.Tailers()[0]

	metric := func() string { return scrape(t, nd.HTTPAddr(), `kasync_storm_guard_active{function="fn"}`) }
	require.Eventually(t, func() bool { return metric() == "1" }, time.Minute, 5*time.Millisecond, "the guard turns on")
	require.Eventually(t, func() bool { return source.Stats().RetriedInPlace >= 3*window }, time.Minute, 5*time.Millisecond,
		"failing work retries in place")
	st := source.Stats()
	require.LessOrEqual(t, st.Delayed, int64(minOutcomes+window), "at most about one window's worth of records entered the rungs")
	require.LessOrEqual(t, st.Read, int64(window+minOutcomes+window), "the source stopped reading: its partitions are paused")

	failing.Store(false)
	require.Eventually(t, func() bool { return ok.succeeded() == n }, 2*time.Minute, 5*time.Millisecond, "every event succeeds")
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	require.Eventually(t, func() bool { return metric() == "0" }, time.Minute, 5*time.Millisecond, "the guard turns off")
	nd.stop(t)

	for _, tl := range nd.Tailers() {
		require.Zero(t, tl.Stats().DeadLettered, "%+v: nothing was dead-lettered", tl.Stats())
	}
	deadLetters(t, brokers, cfg, 0)
	require.Equal(t, 1, strings.Count(logs.String(), "failure-storm guard on"), "one log line when the guard turns on:\n%s", logs.String())
}

// scrape returns the value of one series on the node's /metrics, or "" when absent.
func scrape(t *testing.T, addr, series string) string {
	t.Helper()
	return scrapeAll(t, addr, series)[series]
}
