package tailer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// TestEndToEndInProcess: 100,000 events over 12 partitions through the in-process path,
// completing in random order. Every event runs exactly once and the committed watermark
// of every partition reaches the log end, in the group and in Pebble.
func TestEndToEndInProcess(t *testing.T) {
	t.Parallel()
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	f := newFixture(t, 12)
	kafkatest.ProduceN(t, f.brokers, f.topic, n, valueRecord(f.topic))
	end := kafkatest.EndOffsets(t, f.brokers, f.topic)

	var runs executions
	exec := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		if rand.IntN(16) == 0 { // hold some back so completions arrive out of order
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		}
		runs.add(string(w.Payload))
		return scheduler.Success()
	}
	store := newStore(t, vfs.NewMem())
	cfg := f.config("e2e", localScheduler(t, exec, 0), store)
	r := start(t, cfg)
	f.waitCommitted(t, cfg.Group, atEnd(end))
	r.stop(t)

	got := runs.snapshot()
	require.Len(t, got, n, "every event ran")
	for i := range n {
		require.Equal(t, 1, got["e-"+strconv.Itoa(i)], "event e-%d ran exactly once", i)
	}
	for p, e := range end {
		st, ok, err := store.Load(context.Background(), checkpoint.Key{Group: cfg.Group, Topic: f.topic, Partition: p})
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, e, st.Watermark, "pebble watermark of partition %d", p)
		require.True(t, st.Done.IsEmpty())
	}
	require.Equal(t, int64(0), kafkatest.EndOffsets(t, f.brokers, f.dlqTopic)[0], "nothing dead-lettered")
	stats := r.Stats()
	require.Equal(t, int64(n), stats.Succeeded)
	require.Equal(t, int64(0), stats.InFlight)
}

// TestRestartResumesFromCheckpoint: a tailer stopped while one record is stuck commits a
// watermark below that record and the offsets done above it; its successor re-runs the
// stuck record and nothing else. A third tailer with an empty local store resumes from
// the group's commit and re-runs nothing.
func TestRestartResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	const n = 2000
	f := newFixture(t, 4)
	kafkatest.ProduceN(t, f.brokers, f.topic, n, valueRecord(f.topic))
	end := kafkatest.EndOffsets(t, f.brokers, f.topic)
	store := newStore(t, vfs.NewMem())

	const stuckPartition, stuckOffset = 0, 100
	var first executions
	exec1 := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		if p, o := partitionOffset(t, w.ID); p == stuckPartition && o == stuckOffset {
			<-ctx.Done() // never completes in this run
			return scheduler.Retriable(scheduler.ReasonShutdown, "stopped")
		}
		first.add(string(w.Payload))
		return scheduler.Success()
	}
	cfg := f.config("first", localScheduler(t, exec1, 0), store)
	r1 := start(t, cfg)
	f.waitCommitted(t, cfg.Group, func(c map[int32]int64) bool {
		for p, e := range end {
			want := e
			if p == stuckPartition {
				want = stuckOffset
			}
			if c[p] != want {
				return false
			}
		}
		return true
	})
	// Wait until everything but the stuck record has run, then stop mid-flight.
	require.Eventually(t, func() bool { return len(first.snapshot()) == n-1 }, 30*time.Second, 10*time.Millisecond)
	r1.stop(t)

	key := checkpoint.Key{Group: cfg.Group, Topic: f.topic, Partition: stuckPartition}
	st, ok, err := store.Load(context.Background(), key)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(stuckOffset), st.Watermark)
	require.Equal(t, []checkpoint.Range{{Start: stuckOffset + 1, End: end[stuckPartition]}}, st.Done.Ranges(),
		"offsets done above the watermark are in the checkpoint")

	var second executions
	var secondIDs atomic.Value
	exec2 := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		second.add(string(w.Payload))
		secondIDs.Store(w.ID)
		return scheduler.Success()
	}
	cfg2 := f.config("second", localScheduler(t, exec2, 0), store)
	r2 := start(t, cfg2)
	f.waitCommitted(t, cfg.Group, atEnd(end))
	r2.stop(t)
	require.Len(t, second.snapshot(), 1, "only the record that never completed runs again")
	require.Equal(t, fmt.Sprintf("%s/%d/%d", f.topic, stuckPartition, stuckOffset), secondIDs.Load())

	var third executions
	exec3 := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		third.add(string(w.Payload))
		return scheduler.Success()
	}
	r3 := start(t, f.config("third", localScheduler(t, exec3, 0), newStore(t, vfs.NewMem())))
	kafkatest.ProduceN(t, f.brokers, f.topic, 8, func(i int) *kgo.Record {
		return &kgo.Record{Topic: f.topic, Value: []byte("new-" + strconv.Itoa(i))}
	})
	f.waitCommitted(t, cfg.Group, atEnd(kafkatest.EndOffsets(t, f.brokers, f.topic)))
	r3.stop(t)
	got := third.snapshot()
	require.Len(t, got, 8, "a node with no local checkpoint resumes from the group's commit: only new events run")
	for i := range 8 {
		require.Equal(t, 1, got["new-"+strconv.Itoa(i)])
	}
}

// TestFailuresAndBadInput: fatal outcomes, exhausted retries, records too large for the
// scheduler and unknown functions all reach the dead-letter topic with their reason and
// the origin; a flaky record succeeds at its third attempt after waiting on the delay
// rungs; the partition reaches its end.
func TestFailuresAndBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	values := []string{"ok", "fatal", "flaky", "always", strings.Repeat("x", 4096), "ok2"}
	kafkatest.ProduceN(t, f.brokers, f.topic, len(values), func(i int) *kgo.Record {
		return &kgo.Record{Topic: f.topic, Key: []byte("key-" + strconv.Itoa(i)), Value: []byte(values[i])}
	})
	end := kafkatest.EndOffsets(t, f.brokers, f.topic)

	var runs executions
	var attempts sync.Map // payload → attempts seen, in order
	exec := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		runs.add(string(w.Payload))
		seen, _ := attempts.LoadOrStore(string(w.Payload), &[]int{})
		*seen.(*[]int) = append(*seen.(*[]int), w.Attempt)
		switch string(w.Payload) {
		case "fatal":
			return scheduler.Fatal(scheduler.ReasonFatal, "bad card")
		case "always":
			return scheduler.Retriable(scheduler.ReasonError, "downstream "+strconv.Itoa(w.Attempt))
		case "flaky":
			if w.Attempt < 3 {
				return scheduler.Retriable(scheduler.ReasonError, "flaky")
			}
		}
		return scheduler.Success()
	}
	sched := localScheduler(t, exec, 1024)
	store := newStore(t, vfs.NewMem())
	cfg := f.config("bad", sched, store)
	r := start(t, cfg)
	rungs := f.startRungReaders(t, sched, store)
	f.waitCommitted(t, cfg.Group, atEnd(end))
	require.Eventually(t, func() bool { return runs.snapshot()["flaky"] == 3 }, 30*time.Second, time.Millisecond)
	letters := f.deadLetters(t, 3)
	for _, rr := range rungs {
		rr.stop(t)
	}
	r.stop(t)

	got := runs.snapshot()
	require.Equal(t, 3, got["flaky"], "flaky succeeded at its third attempt")
	require.Equal(t, 3, got["always"], "always failed MaxAttempts times")
	require.Equal(t, 1, got["fatal"], "fatal is not retried")
	require.Zero(t, got[values[4]], "too large never ran")
	flaky, _ := attempts.Load("flaky")
	require.Equal(t, []int{1, 2, 3}, *flaky.(*[]int), "attempt numbers travel with the retries")
	require.Equal(t, int64(2), r.Stats().Delayed, "the source sent flaky and always to a rung, once each")
	require.Equal(t, int64(2), r.Stats().DeadLettered, "the source dead-lettered fatal and too-large")
	var fromRungs tailer.Stats
	for _, rr := range rungs {
		st := rr.Stats()
		fromRungs.Delayed += st.Delayed
		fromRungs.DeadLettered += st.DeadLettered
		fromRungs.Succeeded += st.Succeeded
	}
	require.Equal(t, tailer.Stats{Delayed: 2, DeadLettered: 1, Succeeded: 1}, fromRungs,
		"the rungs sent attempt 2 of flaky and always on, dead-lettered always at attempt 3, and ran flaky's success")

	byReason := map[string]*kgo.Record{}
	for _, l := range letters {
		byReason[header(l, delaystreams.HeaderReason)] = l
	}
	require.Equal(t, "fatal", string(byReason["fatal"].Value))
	require.Equal(t, "bad card", header(byReason["fatal"], delaystreams.HeaderError))
	require.Equal(t, "1", header(byReason["fatal"], delaystreams.HeaderAttempt))
	require.Equal(t, "always", string(byReason["exhausted"].Value))
	require.Equal(t, "downstream 3", header(byReason["exhausted"], delaystreams.HeaderError))
	require.Equal(t, "3", header(byReason["exhausted"], delaystreams.HeaderAttempt))
	require.Equal(t, "key-3", string(byReason["exhausted"].Key), "the key is kept")
	require.Equal(t, f.topic+"/0/3", header(byReason["exhausted"], delaystreams.HeaderOrigin))
	require.Equal(t, "fn", header(byReason["exhausted"], delaystreams.HeaderFunction))
	require.Len(t, byReason["too-large"].Value, 4096)
	require.Contains(t, header(byReason["too-large"], delaystreams.HeaderError), "1024")
}

// TestUnknownFunction: a tailer whose function the scheduler does not know dead-letters
// every record with reason unknown-function and keeps moving.
func TestUnknownFunction(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	kafkatest.ProduceN(t, f.brokers, f.topic, 10, valueRecord(f.topic))
	end := kafkatest.EndOffsets(t, f.brokers, f.topic)
	exec := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		t.Errorf("workload %s ran", w.ID)
		return scheduler.Success()
	}
	cfg := f.config("unknown", localScheduler(t, exec, 0), newStore(t, vfs.NewMem()))
	cfg.Function, cfg.Reader = "nope", f.sourceReader(t, "nope")
	r := start(t, cfg)
	f.waitCommitted(t, cfg.Group, atEnd(end))
	r.stop(t)
	require.Zero(t, r.Stats().Delayed, "an unknown function is never retried")
	for _, l := range f.deadLetters(t, 10) {
		require.Equal(t, "unknown-function", header(l, delaystreams.HeaderReason))
		require.Equal(t, "nope", header(l, delaystreams.HeaderFunction))
	}
}

// TestForgedRungHeaders: records produced straight into a rung topic with garbage or
// forged kasync headers are clamped and still end in success or the dead letter, with
// the reason; none stops the rung's partition.
func TestForgedRungHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	rung := delaystreams.RungTopic(f.prefix, f.rungs[0])
	now := time.Now()
	yearAhead := strconv.FormatInt(now.Add(365*24*time.Hour).UnixMilli(), 10)
	h := func(kv ...string) []kgo.RecordHeader {
		var out []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			out = append(out, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	origin := func(off int) string { return "orders/0/" + strconv.Itoa(off) }
	records := []*kgo.Record{
		{Value: []byte("far"), Headers: h(delaystreams.HeaderFunction, "fn", delaystreams.HeaderAttempt, "-1",
			delaystreams.HeaderDue, yearAhead, delaystreams.HeaderOrigin, origin(0), delaystreams.HeaderFirstFailure, "soon")},
		{Value: []byte("garbage"), Headers: h(delaystreams.HeaderFunction, "fn", delaystreams.HeaderAttempt, "abc",
			delaystreams.HeaderDue, "xyz", delaystreams.HeaderOrigin, origin(1))},
		{Value: []byte("nofunction"), Headers: h(delaystreams.HeaderAttempt, "1", delaystreams.HeaderOrigin, origin(2))},
		{Value: []byte("huge"), Headers: h(delaystreams.HeaderFunction, "fn", delaystreams.HeaderAttempt, "99999999999",
			delaystreams.HeaderOrigin, origin(3))},
		{Value: []byte("ghost"), Headers: h(delaystreams.HeaderFunction, "ghost", delaystreams.HeaderOrigin, origin(4))},
	}
	kafkatest.ProduceN(t, f.brokers, rung, len(records), func(i int) *kgo.Record {
		r := records[i]
		r.Topic, r.Partition = rung, 0
		return r
	})

	var mu sync.Mutex
	ran := map[string][]int{}
	started := map[string]time.Time{}
	exec := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		mu.Lock()
		ran[string(w.Payload)] = append(ran[string(w.Payload)], w.Attempt)
		started[string(w.Payload)] = time.Now()
		mu.Unlock()
		if string(w.Payload) == "huge" {
			return scheduler.Retriable(scheduler.ReasonError, "still failing")
		}
		return scheduler.Success()
	}
	sched := localScheduler(t, exec, 0)
	store := newStore(t, vfs.NewMem())
	f.startRungReaders(t, sched, store)

	byReason := map[string]*kgo.Record{}
	for _, l := range f.deadLetters(t, 3) {
		byReason[header(l, delaystreams.HeaderReason)] = l
	}
	require.Equal(t, "nofunction", string(byReason[string(delaystreams.ReasonInvalidHeaders)].Value))
	require.Equal(t, "huge", string(byReason["exhausted"].Value), "a forged attempt count cannot retry for ever")
	require.Equal(t, strconv.Itoa(delaystreams.MaxAttempt), header(byReason["exhausted"], delaystreams.HeaderAttempt))
	require.Equal(t, "ghost", string(byReason["unknown-function"].Value))
	require.Equal(t, origin(4), header(byReason["unknown-function"], delaystreams.HeaderOrigin))

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ran["far"]) == 1 && len(ran["garbage"]) == 1
	}, 30*time.Second, time.Millisecond, "the clamped records ran")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{2}, ran["garbage"], "a garbage attempt counts as 1: this run is the second")
	require.Equal(t, []int{2}, ran["far"], "attempt -1 is clamped to 1")
	require.GreaterOrEqual(t, started["far"].Sub(now), fixtureMaxDelay-50*time.Millisecond,
		"a due time a year ahead is clamped to MaxDelay, not run at once")
	require.Equal(t, []int{delaystreams.MaxAttempt}, ran["huge"])
	require.Empty(t, ran["nofunction"])
	require.Equal(t, []int{delaystreams.MaxAttempt}, ran["huge"])
}

// flakyProducer fails every produce until allowed, then delegates.
type flakyProducer struct {
	next    tailer.Producer
	allow   chan struct{}
	refused atomic.Int64
}

func (d *flakyProducer) Produce(ctx context.Context, recs []*kgo.Record) []error {
	select {
	case <-d.allow:
		return d.next.Produce(ctx, recs)
	default:
	}
	d.refused.Add(1)
	errs := make([]error, len(recs))
	for i := range errs {
		errs[i] = fmt.Errorf("broker unavailable (test)")
	}
	return errs
}

// TestDeadLetterFailureHoldsCheckpoint: while the dead-letter topic refuses a fatal
// record, the partition moves on (the records after it complete) but its checkpoint
// stays below the record; once the produce succeeds, the checkpoint passes it. Nothing
// is dropped.
func TestDeadLetterFailureHoldsCheckpoint(t *testing.T) {
	t.Parallel()
	const n, fatalAt = 10, 3
	f := newFixture(t, 1)
	kafkatest.ProduceN(t, f.brokers, f.topic, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: f.topic, Value: []byte("e-" + strconv.Itoa(i))}
	})
	exec := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		if string(w.Payload) == "e-"+strconv.Itoa(fatalAt) {
			return scheduler.Fatal(scheduler.ReasonFatal, "poison")
		}
		return scheduler.Success()
	}
	store := newStore(t, vfs.NewMem())
	dl := &flakyProducer{next: f.router, allow: make(chan struct{})}
	cfg := f.config("dlq-down", localScheduler(t, exec, 0), store)
	cfg.Producer = dl
	r := start(t, cfg)

	// Every other record completes and is checkpointed above the held one.
	key := checkpoint.Key{Group: cfg.Group, Topic: f.topic, Partition: 0}
	require.Eventually(t, func() bool {
		st, ok, err := store.Load(context.Background(), key)
		require.NoError(t, err)
		return ok && st.Done.Count() == n-fatalAt-1
	}, 30*time.Second, 10*time.Millisecond)
	st, _, _ := store.Load(context.Background(), key)
	require.Equal(t, int64(fatalAt), st.Watermark, "the checkpoint waits for the dead letter")
	require.Equal(t, int64(fatalAt), kafkatest.CommittedOffsets(t, f.brokers, cfg.Group, f.topic)[0])
	require.Positive(t, dl.refused.Load())

	close(dl.allow)
	f.waitCommitted(t, cfg.Group, atEnd(map[int32]int64{0: n}))
	r.stop(t)
	letters := f.deadLetters(t, 1)
	require.Equal(t, "e-"+strconv.Itoa(fatalAt), string(letters[0].Value))
}

// holdingExecutor runs nothing until released; it records the most executions at once.
type holdingExecutor struct {
	release       chan struct{}
	running, most atomic.Int64
}

func (h *holdingExecutor) exec(ctx context.Context, _ *scheduler.Workload, _ time.Duration) scheduler.Outcome {
	cur := h.running.Add(1)
	for m := h.most.Load(); cur > m && !h.most.CompareAndSwap(m, cur); m = h.most.Load() {
	}
	defer h.running.Add(-1)
	select {
	case <-h.release:
		return scheduler.Success()
	case <-ctx.Done():
		return scheduler.Retriable(scheduler.ReasonShutdown, "stopped")
	}
}

// TestInFlightIsBounded: with a function that holds every record, the tailer reads up
// to MaxInFlight records and no further (the scheduler has slots for far more); a
// partition that reaches PartitionMaxInFlight is paused, and resumed once its records
// complete, until every record has run.
func TestInFlightIsBounded(t *testing.T) {
	t.Parallel()
	t.Run("tailer bound", func(t *testing.T) {
		t.Parallel()
		const n, bound = 2000, 50
		f := newFixture(t, 4)
		kafkatest.ProduceN(t, f.brokers, f.topic, n, valueRecord(f.topic))
		h := &holdingExecutor{release: make(chan struct{}, n)}
		cfg := f.config("bounded", localScheduler(t, h.exec, 0), newStore(t, vfs.NewMem()))
		cfg.MaxInFlight = bound
		r := start(t, cfg)
		require.Eventually(t, func() bool { return h.running.Load() == bound }, 30*time.Second, time.Millisecond)
		require.Equal(t, int64(bound), r.Stats().InFlight)
		for range n {
			h.release <- struct{}{}
		}
		f.waitCommitted(t, cfg.Group, atEnd(kafkatest.EndOffsets(t, f.brokers, f.topic)))
		r.stop(t)
		require.LessOrEqual(t, h.most.Load(), int64(bound), "never more than MaxInFlight records in flight")
		require.Equal(t, int64(n), r.Stats().Succeeded)
	})
	t.Run("partition pause", func(t *testing.T) {
		t.Parallel()
		const n, share = 500, 20
		f := newFixture(t, 1)
		kafkatest.ProduceN(t, f.brokers, f.topic, n, valueRecord(f.topic))
		h := &holdingExecutor{release: make(chan struct{}, n)}
		cfg := f.config("paused", localScheduler(t, h.exec, 0), newStore(t, vfs.NewMem()))
		cfg.MaxInFlight, cfg.PartitionMaxInFlight, cfg.MaxRecords = 1000, share, 10
		r := start(t, cfg)
		require.Eventually(t, func() bool { return r.Stats().Pauses == 1 }, 30*time.Second, time.Millisecond)
		inFlight := r.Stats().InFlight
		require.GreaterOrEqual(t, inFlight, int64(share))
		require.Less(t, inFlight, int64(share+cfg.MaxRecords), "paused within one poll of its share")
		for range n {
			h.release <- struct{}{}
		}
		f.waitCommitted(t, cfg.Group, atEnd(kafkatest.EndOffsets(t, f.brokers, f.topic)))
		r.stop(t)
		require.Equal(t, int64(n), r.Stats().Succeeded, "the paused partition resumed until its end")
	})
}

// stuckStore is a checkpoint store whose Flush waits, while stuck is open, until it is
// closed or the flush's context ends: a sync that is slow (or held for its slot).
type stuckStore struct {
	checkpoint.Store
	stuck chan struct{}
}

func (s *stuckStore) Flush(ctx context.Context) error {
	select {
	case <-s.stuck:
		return s.Store.Flush(ctx)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestUndurableWorkIsBounded: while no checkpoint write syncs, a tailer reads no more
// than MaxInFlight + CommitCount records, however fast they complete, so that is what a
// crash can make run again (invariant 2); once a write syncs, it reads on to the end.
func TestUndurableWorkIsBounded(t *testing.T) {
	t.Parallel()
	const n, inFlight, pending = 3000, 100, 300
	f := newFixture(t, 2)
	kafkatest.ProduceN(t, f.brokers, f.topic, n, valueRecord(f.topic))
	exec := func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Success()
	}
	store := &stuckStore{Store: newStore(t, vfs.NewMem()), stuck: make(chan struct{})}
	cfg := f.config("undurable", localScheduler(t, exec, 0), store)
	cfg.MaxInFlight, cfg.CommitCount = inFlight, pending
	r := start(t, cfg)
	// Every record read is done, and none was made durable: the tailer waits for a sync.
	require.Eventually(t, func() bool {
		st := r.Stats()
		return st.Succeeded == st.Read && st.Read >= inFlight+pending
	}, 30*time.Second, time.Millisecond)
	require.Equal(t, int64(inFlight+pending), r.Stats().Read, "records read while no checkpoint synced")
	close(store.stuck)
	f.waitCommitted(t, cfg.Group, atEnd(kafkatest.EndOffsets(t, f.brokers, f.topic)))
	r.stop(t)
	require.Equal(t, int64(n), r.Stats().Succeeded)
}

// TestStopBeforeStart: a tailer whose context is done before it starts returns nil.
func TestStopBeforeStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	cfg := f.config("early", localScheduler(t, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Success()
	}, 0), newStore(t, vfs.NewMem()))
	tl, err := tailer.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, tl.Run(ctx))
}

// holdingReader holds one offset of partition 0 for an hour and otherwise reads as next.
type holdingReader struct {
	tailer.Reader
	offset int64
}

func (r holdingReader) Next(rec *kgo.Record, now time.Time) tailer.Step {
	if rec.Partition == 0 && rec.Offset == r.offset {
		return tailer.Step{Action: tailer.ActionWait, Until: now.Add(time.Hour)}
	}
	return r.Reader.Next(rec, now)
}

// TestHeldRecordsGoToTheNextOwner: a held record holds the records behind it in its
// partition, and the checkpoint below it. A stop does not wait for held records (they
// are not running); the partition's next owner reads them again and runs them, and
// every record runs exactly once.
func TestHeldRecordsGoToTheNextOwner(t *testing.T) {
	t.Parallel()
	const n, heldAt = 10, 3
	f := newFixture(t, 1)
	kafkatest.ProduceN(t, f.brokers, f.topic, n, valueRecord(f.topic))
	var runs executions
	exec := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		runs.add(string(w.Payload))
		return scheduler.Success()
	}
	store := newStore(t, vfs.NewMem())
	cfg := f.config("holder", localScheduler(t, exec, 0), store)
	cfg.RevokeTimeout = time.Minute
	cfg.Reader = holdingReader{Reader: cfg.Reader, offset: heldAt}
	a := start(t, cfg)
	require.Eventually(t, func() bool { return a.Stats().Held == n-heldAt && a.Stats().Succeeded == heldAt },
		30*time.Second, time.Millisecond, "the records behind the held one wait with it")
	f.waitCommitted(t, cfg.Group, atEnd(map[int32]int64{0: heldAt}))
	began := time.Now()
	a.stop(t)
	require.Less(t, time.Since(began), cfg.RevokeTimeout/2, "a stop does not wait for held records")
	require.Equal(t, map[int32]int64{0: heldAt}, kafkatest.CommittedOffsets(t, f.brokers, cfg.Group, f.topic))

	cfg.Name, cfg.Reader = "next-owner", f.sourceReader(t, "fn")
	b := start(t, cfg)
	f.waitCommitted(t, cfg.Group, atEnd(map[int32]int64{0: n}))
	b.stop(t)
	got := runs.snapshot()
	require.Len(t, got, n)
	for payload, c := range got {
		require.Equal(t, 1, c, "%s ran once", payload)
	}
}

// TestLag: while a function holds every record, the lag of the partition is every
// record produced, and its age is that of the oldest record, by its timestamp; once
// the records are done the lag is zero.
func TestLag(t *testing.T) {
	t.Parallel()
	const n = 40
	f := newFixture(t, 1)
	produced := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	kafkatest.ProduceN(t, f.brokers, f.topic, n, func(i int) *kgo.Record {
		r := valueRecord(f.topic)(i)
		r.Timestamp = produced.Add(time.Duration(i) * time.Millisecond)
		return r
	})
	h := &holdingExecutor{release: make(chan struct{}, n)}
	cfg := f.config("lag", localScheduler(t, h.exec, 0), newStore(t, vfs.NewMem()))
	r := start(t, cfg)
	require.Eventually(t, func() bool { return h.running.Load() == n }, 30*time.Second, time.Millisecond)
	before := time.Now()
	lags := r.Lag()
	require.Len(t, lags, 1)
	require.Equal(t, int32(0), lags[0].Partition)
	require.EqualValues(t, n, lags[0].Records, "every record produced is behind")
	require.GreaterOrEqual(t, lags[0].Age, before.Sub(produced), "the age of the oldest record, record 0")
	require.Less(t, lags[0].Age, time.Since(produced)+time.Millisecond)

	for range n {
		h.release <- struct{}{}
	}
	require.Eventually(t, func() bool {
		l := r.Lag()
		return len(l) == 1 && l[0].Records == 0 && l[0].Age == 0
	}, 30*time.Second, time.Millisecond, "caught up")
	r.stop(t)
}

// TestLagOfAPartitionNeverRead: a partition that has had no record and no commit has
// no lag, not one record: its window starts at -1 until a record is read.
func TestLagOfAPartitionNeverRead(t *testing.T) {
	t.Parallel()
	const n = 20
	f := newFixture(t, 2)
	kafkatest.ProduceN(t, f.brokers, f.topic, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: f.topic, Key: []byte("one key, one partition"), Value: []byte("e-" + strconv.Itoa(i))}
	})
	exec := func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Success()
	}
	r := start(t, f.config("never-read", localScheduler(t, exec, 0), newStore(t, vfs.NewMem())))
	require.Eventually(t, func() bool { return r.Stats().Succeeded == n }, 30*time.Second, time.Millisecond)
	require.Eventually(t, func() bool {
		l := r.Lag()
		return len(l) == 2 && l[0].Records == 0 && l[1].Records == 0
	}, 10*time.Second, 5*time.Millisecond, "both partitions are caught up: %v", r.Lag())
	r.stop(t)
}

// TestUndurableBoundDoesNotWaitForTheSyncSlot: with the store's next sync slot an hour
// away, the tailer keeps reading past MaxInFlight + CommitCount: the write its bound
// asks for is urgent (FlushNow), and a periodic write already waiting for the slot is
// hurried, so the bound costs a sync, not an hour.
func TestUndurableBoundDoesNotWaitForTheSyncSlot(t *testing.T) {
	t.Parallel()
	const n, inFlight, pending = 3000, 100, 300
	f := newFixture(t, 2)
	kafkatest.ProduceN(t, f.brokers, f.topic, n, valueRecord(f.topic))
	exec := func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Success()
	}
	store, err := checkpoint.OpenPebble(checkpoint.PebbleOptions{Dir: "cp", FS: vfs.NewMem(), Logger: quietLogger(), MinSyncInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	cfg := f.config("slot", localScheduler(t, exec, 0), store)
	cfg.MaxInFlight, cfg.CommitCount = inFlight, pending
	cfg.CommitInterval = 20 * time.Millisecond // periodic writes wait for the slot
	r := start(t, cfg)
	require.Eventually(t, func() bool { return r.Stats().Succeeded == n }, 30*time.Second, time.Millisecond,
		"every record runs although no sync slot comes")
	r.stop(t)
}
