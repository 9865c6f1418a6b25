package tailer_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// orderedConfig is the fixture's config for a tailer keeping ordering o, with a reader
// that retries in place.
func (f *fixture) orderedConfig(t *testing.T, name string, o tailer.Ordering, sched tailer.Scheduler) tailer.Config {
	t.Helper()
	cfg := f.config(name, sched, newStore(t, vfs.NewMem()))
	reader, err := delaystreams.NewOrderedSourceReader(f.router, "fn", 0)
	require.NoError(t, err)
	cfg.Reader, cfg.Ordering = reader, o
	return cfg
}

// orderLog records, per ordering key, every attempt's start and whether attempts of one
// key ever overlapped.
type orderLog struct {
	mu       sync.Mutex
	running  map[string]int
	starts   map[string][]int64 // offsets, in the order attempts started
	overlaps []string
	outcomes map[string]int // payload → successes
}

func newOrderLog() *orderLog {
	return &orderLog{running: map[string]int{}, starts: map[string][]int64{}, outcomes: map[string]int{}}
}

func (l *orderLog) begin(key string, offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running[key]++
	if l.running[key] > 1 && len(l.overlaps) < 10 {
		l.overlaps = append(l.overlaps, fmt.Sprintf("key %q: offset %d started while another attempt of the key ran", key, offset))
	}
	l.starts[key] = append(l.starts[key], offset)
}

func (l *orderLog) end(key, payload string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running[key]--
	if ok {
		l.outcomes[payload]++
	}
}

// decide is the deterministic fate of one attempt of a payload: success, a retriable
// failure or a fatal one, drawn from a hash so the test can predict every record's end.
func decide(seed uint64, payload string, attempt int) scheduler.OutcomeKind {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%d/%s/%d", seed, payload, attempt)
	switch v := h.Sum64() % 100; {
	case v < 3:
		return scheduler.OutcomeFatal
	case v < 35:
		return scheduler.OutcomeRetriable
	default:
		return scheduler.OutcomeSuccess
	}
}

// TestKeyOrderProperty runs random keys through a key-ordered tailer whose function
// fails at random (retriable and fatal): for every key, attempts never overlap and start
// in offset order (so successes happen in offset order), every record ends exactly as
// its fate says (success once, or a dead letter), and records with a null key, which
// have no order to keep, run too.
func TestKeyOrderProperty(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const n, keys = 1500, 40

	f := newFixture(t, 4)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: f.topic, Value: []byte("e-" + strconv.Itoa(i))}
		if rng.IntN(20) != 0 { // one in twenty has a null key
			recs[i].Key = []byte("k" + strconv.Itoa(rng.IntN(keys)))
		}
	}
	kafkatest.ProduceN(t, f.brokers, f.topic, n, func(i int) *kgo.Record { return recs[i] })
	end := kafkatest.EndOffsets(t, f.brokers, f.topic)

	log := newOrderLog()
	exec := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		p, off := partitionOffset(t, w.ID)
		key := fmt.Sprintf("%d/%s", p, w.Key)
		if w.Key == nil {
			key = "null/" + w.ID // unordered: its own line
		}
		log.begin(key, off)
		time.Sleep(time.Duration(jitter(w.ID, w.Attempt)) * 100 * time.Microsecond) // let attempts overlap if they could
		kind := decide(seed, string(w.Payload), w.Attempt)
		log.end(key, string(w.Payload), kind == scheduler.OutcomeSuccess)
		switch kind {
		case scheduler.OutcomeFatal:
			return scheduler.Fatal(scheduler.ReasonFatal, "fatal")
		case scheduler.OutcomeRetriable:
			return scheduler.Retriable(scheduler.ReasonError, "flaky")
		}
		return scheduler.Success()
	}
	cfg := f.orderedConfig(t, "key-order", tailer.OrderKey, localScheduler(t, exec, 0))
	r := start(t, cfg)
	f.waitCommitted(t, cfg.Group, atEnd(end))

	wantLetters := 0
	for i := range recs {
		payload := string(recs[i].Value)
		succeeded := false
		for a := 1; a <= fixtureRetry.MaxAttempts; a++ {
			k := decide(seed, payload, a)
			if k == scheduler.OutcomeSuccess {
				succeeded = true
			}
			if k != scheduler.OutcomeRetriable {
				break
			}
		}
		if !succeeded {
			wantLetters++
		}
	}
	letters := f.deadLetters(t, wantLetters)
	r.stop(t)

	log.mu.Lock()
	defer log.mu.Unlock()
	require.Empty(t, log.overlaps, "attempts of one key overlapped")
	for key, offs := range log.starts {
		for i := 1; i < len(offs); i++ {
			require.LessOrEqual(t, offs[i-1], offs[i], "key %s: attempts started out of offset order: %v", key, offs)
		}
	}
	for i := range recs {
		payload := string(recs[i].Value)
		want := 0
		for a := 1; a <= fixtureRetry.MaxAttempts; a++ {
			k := decide(seed, payload, a)
			if k == scheduler.OutcomeSuccess {
				want = 1
			}
			if k != scheduler.OutcomeRetriable {
				break
			}
		}
		require.Equal(t, want, log.outcomes[payload], "successes of %s", payload)
	}
	require.Len(t, letters, wantLetters)
	st := r.Stats()
	require.Zero(t, st.Delayed, "an ordered tailer never sends a retry to a rung")
	require.Positive(t, st.RetriedInPlace)
	require.Zero(t, st.Blocked, "no record is left blocked at the end")
	t.Logf("%d records, %d keys: %d retried in place, %d dead letters", n, keys, st.RetriedInPlace, wantLetters)
}

// jitter is a small deterministic jitter per attempt, 0..3.
func jitter(id string, attempt int) int {
	h := fnv.New32a()
	_, _ = fmt.Fprintf(h, "%s/%d", id, attempt)
	return int(h.Sum32() % 4)
}

// TestKeyOrderOtherKeysFlow: a key whose record waits for a retry holds back only its
// own later records; the other keys of the partition run meanwhile.
func TestKeyOrderOtherKeysFlow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	values := []struct{ key, value string }{{"a", "a1"}, {"a", "a2"}, {"b", "b1"}, {"b", "b2"}, {"a", "a3"}, {"c", "c1"}}
	kafkatest.ProduceN(t, f.brokers, f.topic, len(values), func(i int) *kgo.Record {
		return &kgo.Record{Topic: f.topic, Key: []byte(values[i].key), Value: []byte(values[i].value)}
	})
	end := kafkatest.EndOffsets(t, f.brokers, f.topic)

	release := make(chan struct{})
	var mu sync.Mutex
	var order []string
	exec := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		v := string(w.Payload)
		if v == "a1" && w.Attempt == 1 {
			return scheduler.Retriable(scheduler.ReasonError, "not yet")
		}
		if v == "a1" {
			<-release // attempt 2 of a1 waits until the other keys are done
		}
		mu.Lock()
		order = append(order, v)
		done := len(order)
		mu.Unlock()
		if done == 3 { // b1, b2, c1
			close(release)
		}
		return scheduler.Success()
	}
	cfg := f.orderedConfig(t, "flow", tailer.OrderKey, localScheduler(t, exec, 0))
	r := start(t, cfg)
	f.waitCommitted(t, cfg.Group, atEnd(end))
	r.stop(t)

	mu.Lock()
	defer mu.Unlock()
	require.ElementsMatch(t, []string{"b1", "b2", "c1"}, order[:3], "the other keys ran while a1 waited: %v", order)
	require.Equal(t, []string{"a1", "a2", "a3"}, order[3:], "key a kept its order behind a1's retry")
}

// TestPartitionOrder: in partition order, one record of a partition runs at a time, in
// offset order, across retries.
func TestPartitionOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	const n = 200
	kafkatest.ProduceN(t, f.brokers, f.topic, n, valueRecord(f.topic))
	end := kafkatest.EndOffsets(t, f.brokers, f.topic)

	log := newOrderLog()
	exec := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		p, off := partitionOffset(t, w.ID)
		key := strconv.Itoa(int(p))
		log.begin(key, off)
		time.Sleep(50 * time.Microsecond)
		fail := off%17 == 0 && w.Attempt == 1
		log.end(key, string(w.Payload), !fail)
		if fail {
			return scheduler.Retriable(scheduler.ReasonError, "once")
		}
		return scheduler.Success()
	}
	cfg := f.orderedConfig(t, "partition-order", tailer.OrderPartition, localScheduler(t, exec, 0))
	r := start(t, cfg)
	f.waitCommitted(t, cfg.Group, atEnd(end))
	r.stop(t)

	log.mu.Lock()
	defer log.mu.Unlock()
	require.Empty(t, log.overlaps)
	total := 0
	for p, offs := range log.starts {
		for i := 1; i < len(offs); i++ {
			require.LessOrEqual(t, offs[i-1], offs[i], "partition %s out of order: %v", p, offs)
		}
		total += len(offs)
	}
	require.Len(t, log.outcomes, n, "every record succeeded")
	require.Greater(t, total, n, "some records ran twice (their retry)")
}

// TestKeyOrderRevokeDropsBlocked: records blocked behind a busy key when the tailer
// stops are not waited for; the next owner runs them, in order.
func TestKeyOrderRevokeDropsBlocked(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	const n = 20
	kafkatest.ProduceN(t, f.brokers, f.topic, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: f.topic, Key: []byte("same"), Value: []byte("e-" + strconv.Itoa(i))}
	})
	end := kafkatest.EndOffsets(t, f.brokers, f.topic)

	first := make(chan struct{})
	var once sync.Once
	blocked := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		if string(w.Payload) == "e-1" {
			once.Do(func() { close(first) })
			<-ctx.Done() // e-1 runs until the stop cancels it
			return scheduler.Retriable(scheduler.ReasonShutdown, "stopped")
		}
		return scheduler.Success()
	}
	store := newStore(t, vfs.NewMem())
	cfg := f.orderedConfig(t, "revoke", tailer.OrderKey, localScheduler(t, blocked, 0))
	cfg.Store = store
	cfg.RevokeTimeout = 200 * time.Millisecond
	r := start(t, cfg)
	<-first
	require.Eventually(t, func() bool { return r.Stats().Blocked == n-2 }, 10*time.Second, time.Millisecond,
		"e-2..e-19 wait behind e-1")
	stopped := time.Now()
	r.stop(t)
	require.Less(t, time.Since(stopped), 5*time.Second, "the stop does not wait for blocked records")
	require.Zero(t, r.Stats().Blocked, "the blocked records were dropped with the partition")

	var mu sync.Mutex
	var order []string
	next := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		mu.Lock()
		order = append(order, string(w.Payload))
		mu.Unlock()
		return scheduler.Success()
	}
	cfg2 := f.orderedConfig(t, "revoke", tailer.OrderKey, localScheduler(t, next, 0))
	cfg2.Store = store
	r2 := start(t, cfg2)
	f.waitCommitted(t, cfg.Group, atEnd(end))
	r2.stop(t)
	mu.Lock()
	defer mu.Unlock()
	want := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		want = append(want, "e-"+strconv.Itoa(i))
	}
	require.Equal(t, want, order, "the next owner ran e-1.. in order, once each")
}
