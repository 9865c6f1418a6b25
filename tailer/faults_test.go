package tailer_test

// The harness of the broker fault tests (faults_broker_test.go): a kfake cluster of the
// test's own, whose faults and controls the test sets; a workload with every outcome
// (success, a retry through a rung, retries exhausted into the dead letter, fatal); a
// sampler of the checkpoints (group commits and Pebble) while the faults are on; and the
// oracle that checks every sample against the moment each record's outcome became
// durable.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// envLongFaults selects the long size of the fault tests (make test/faults-long).
const envLongFaults = "KASYNC_LONG_FAULTS"

// faultSize is how big a fault test is: its records and how long the faults stay on.
type faultSize struct {
	records    int
	partitions int32
	window     time.Duration // the faults stay on at least this long
	minHits    int           // and until they answered at least this many requests (see holdFaults)
}

func sizeOfFaults() faultSize {
	if os.Getenv(envLongFaults) == "1" {
		return faultSize{records: 20_000, partitions: 6, window: 15 * time.Second, minHits: 100}
	}
	return faultSize{records: 300, partitions: 3, window: time.Second, minHits: 5}
}

// faultClass is what the function does with record e-i, by i%10: 0 fails fatally
// (straight to the dead letter), 1 always fails (two rungs, then the dead letter as
// exhausted), 2 fails its first attempt only (one rung, then success); the rest succeed.
func faultClass(i int) (runs int, dead bool) {
	switch i % 10 {
	case 0:
		return 1, true
	case 1:
		return fixtureRetry.MaxAttempts, true
	case 2:
		return 2, false
	}
	return 1, false
}

// attemptKey names one attempt of a workload: its id (the origin record) and attempt.
type attemptKey struct {
	id      string
	attempt int
}

// durableTimes records when outcomes became durable, as the tailer saw them: a success
// returned by the function, or a record the producer acknowledged.
type durableTimes struct {
	mu sync.Mutex
	at map[attemptKey]time.Time
}

func (d *durableTimes) mark(k attemptKey) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at == nil {
		d.at = map[attemptKey]time.Time{}
	}
	if _, ok := d.at[k]; !ok {
		d.at[k] = now
	}
}

func (d *durableTimes) get(k attemptKey) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.at[k]
	return at, ok
}

// ackRecorder is a tailer's Producer: it produces through the router and marks, once
// the broker acknowledged a record, its origin and attempt (the attempt that failed).
type ackRecorder struct {
	next tailer.Producer
	acks durableTimes
}

func (a *ackRecorder) Produce(ctx context.Context, recs []*kgo.Record) []error {
	errs := a.next.Produce(ctx, recs)
	for i, r := range recs {
		if i >= len(errs) || errs[i] == nil {
			n, _ := strconv.Atoi(header(r, delaystreams.HeaderAttempt))
			a.acks.mark(attemptKey{header(r, delaystreams.HeaderOrigin), n})
		}
	}
	return errs
}

// faultScenario is one fault test's world: the cluster, the fixture on it, the tailers
// (the source and a reader per rung), the function and what it saw, and the sampler.
type faultScenario struct {
	t       *testing.T
	size    faultSize
	cluster *kfake.Cluster
	f       *fixture
	store   *checkpoint.PebbleStore
	end     map[int32]int64 // the source topic's end offsets

	runs      executions
	successes durableTimes
	mu        sync.Mutex
	succeeded map[int]bool // records whose function succeeded, by index

	fed chan error // the feeder's result: nil once every record was produced

	src      *running
	srcAcks  *ackRecorder
	rungs    []*running
	rungAcks []*ackRecorder
	watches  []watch
	sampler  *sampler
	samples  []sample // what the sampler saw, once finish stopped it
}

// newFaultScenario starts a cluster (kfake, one broker) and the fixture on it. Faults
// belong to the cluster, so these tests always run on kfake, also when
// KASYNC_TEST_BROKERS points the other tests at a real cluster.
func newFaultScenario(t *testing.T) *faultScenario {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0))
	require.NoError(t, err)
	t.Cleanup(cluster.Close) // registered first, so it runs after every client is closed
	s := &faultScenario{t: t, size: sizeOfFaults(), cluster: cluster, succeeded: map[int]bool{}}
	s.f = newFixtureOn(t, cluster.ListenAddrs(), s.size.partitions)
	s.store = newStore(t, vfs.NewMem())
	return s
}

func (s *faultScenario) exec(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
	payload := string(w.Payload)
	s.runs.add(payload)
	i, err := strconv.Atoi(strings.TrimPrefix(payload, "e-"))
	if err != nil {
		return scheduler.Fatal(scheduler.ReasonFatal, "not a test record: "+payload)
	}
	switch i % 10 {
	case 0:
		return scheduler.Fatal(scheduler.ReasonFatal, "poison")
	case 1:
		return scheduler.Retriable(scheduler.ReasonError, "always")
	case 2:
		if w.Attempt == 1 {
			return scheduler.Retriable(scheduler.ReasonError, "flaky")
		}
	}
	s.successes.mark(attemptKey{w.ID, w.Attempt})
	s.mu.Lock()
	s.succeeded[i] = true
	s.mu.Unlock()
	return scheduler.Success()
}

// start runs the source tailer and a reader per rung, each producing through an
// ackRecorder, the sampler of their checkpoints, and the feeder, which produces the
// records evenly over the size's window: records keep failing, and needing rungs and
// the dead letter, while the faults are on.
func (s *faultScenario) start() {
	t := s.t
	s.fed = make(chan error, 1)
	feeder := kafkatest.Client(t, s.f.brokers, kafka.ProducerOpts()...)
	go func() { s.fed <- feed(feeder, s.size, valueRecord(s.f.topic)) }()
	sched := localScheduler(t, s.exec, 0)
	cfg := s.f.config("faults", sched, s.store)
	s.srcAcks = &ackRecorder{next: s.f.router}
	cfg.Producer = s.srcAcks
	s.src = start(t, cfg)
	s.watches = append(s.watches, watch{group: cfg.Group, topic: s.f.topic, partitions: s.size.partitions})
	for i := range s.f.rungs {
		reader, err := delaystreams.NewRungReader(s.f.router, i, quietLogger())
		require.NoError(t, err)
		acks := &ackRecorder{next: s.f.router}
		rc := s.f.config("rung-"+strconv.Itoa(i), sched, s.store)
		rc.Topic, rc.Group, rc.Function, rc.Reader, rc.Producer = reader.Topic(), reader.Topic(), "", reader, acks
		s.rungs = append(s.rungs, start(t, rc))
		s.rungAcks = append(s.rungAcks, acks)
		s.watches = append(s.watches, watch{group: rc.Group, topic: rc.Topic, partitions: 2})
	}
	s.sampler = startSampler(t, s.f.brokers, s.store, s.watches)
}

// holdFaults keeps the faults on for the size's window, until every record was fed and
// until hits, the requests they answered, reach want; then it calls stop and returns
// when the faults stopped.
func (s *faultScenario) holdFaults(hits func() int, want int, stop func()) time.Time {
	t := s.t
	var once sync.Once
	stopOnce := func() { once.Do(stop) }
	t.Cleanup(stopOnce) // also when the test fails first: the tailers stop with the faults off
	began := time.Now()
	deadline := began.Add(s.size.window + 60*time.Second)
	for time.Since(began) < s.size.window || hits() < want {
		if time.Now().After(deadline) {
			t.Fatalf("the faults answered %d requests in %s; want %d", hits(), time.Since(began).Round(time.Millisecond), want)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not asserting on time
	}
	select {
	case err := <-s.fed:
		require.NoError(t, err, "feeding the records")
	case <-time.After(60 * time.Second):
		t.Fatal("the feeder did not produce every record within 60s")
	}
	stopOnce()
	t.Logf("faults on for %s", time.Since(began).Round(time.Millisecond))
	s.end = kafkatest.EndOffsets(t, s.f.brokers, s.f.topic)
	return time.Now()
}

// feed produces gen(0) ... gen(size.records-1) in chunks, evenly over size.window.
func feed(cl *kgo.Client, size faultSize, gen func(int) *kgo.Record) error {
	chunk := max(10, size.records/200)
	ctx, cancel := context.WithTimeout(context.Background(), size.window+60*time.Second)
	defer cancel()
	tick := time.NewTicker(max(time.Millisecond, size.window*time.Duration(chunk)/time.Duration(size.records)))
	defer tick.Stop()
	for i := 0; i < size.records; i += chunk {
		recs := make([]*kgo.Record, 0, chunk)
		for j := i; j < min(i+chunk, size.records); j++ {
			recs = append(recs, gen(j))
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return err
		}
		<-tick.C
	}
	return nil
}

// done reports whether every record has its final outcome: each record that is to
// succeed did, the dead letters were produced, and every group committed its end.
func (s *faultScenario) done(ctx context.Context) bool {
	s.mu.Lock()
	succeeded := len(s.succeeded)
	s.mu.Unlock()
	wantOK, wantDead := 0, 0
	for i := range s.size.records {
		if _, dead := faultClass(i); dead {
			wantDead++
		} else {
			wantOK++
		}
	}
	dead := s.src.Stats().DeadLettered
	for _, r := range s.rungs {
		dead += r.Stats().DeadLettered
	}
	if succeeded < wantOK || dead < int64(wantDead) {
		return false
	}
	return s.sampler.allCommitted(ctx)
}

// faultFigures are what a fault test prints.
type faultFigures struct {
	records, runs, duplicates, deadLetters, samples int
	recovery                                        time.Duration
}

// finish waits for every record's final outcome after the faults stopped at stopped,
// stops the tailers, and checks: no sampled checkpoint (group commit or Pebble) ever
// passed a record whose outcome was not durable yet; every record that is to succeed
// ran to success; every record that is to fail is in the dead letter.
func (s *faultScenario) finish(stopped time.Time) faultFigures {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for !s.done(ctx) {
		if ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not asserting on time
	}
	fig := faultFigures{records: s.size.records, recovery: time.Since(stopped)}
	samples := s.sampler.stop()
	s.samples, fig.samples = samples, len(samples)
	stats := s.src.Stats()
	for _, r := range s.rungs {
		r.stop(t)
	}
	s.src.stop(t)
	// The oracle first: when records are missing, it names the checkpoint that passed
	// them, if one did.
	s.checkSamples(samples)
	if ctx.Err() != nil {
		t.Fatalf("not every record reached its outcome within 60s of the faults stopping; source %+v, committed %v (end %v)",
			stats, kafkatest.CommittedOffsets(t, s.f.brokers, s.src.Group(), s.f.topic), s.end)
	}

	got := s.runs.snapshot()
	wantDead := map[string]bool{}
	for i := range s.size.records {
		payload := "e-" + strconv.Itoa(i)
		runs, dead := faultClass(i)
		require.GreaterOrEqual(t, got[payload], runs, "%s ran fewer times than its outcome needs", payload)
		fig.runs += got[payload]
		fig.duplicates += got[payload] - runs
		if dead {
			wantDead[payload] = true
		}
	}
	letters := s.f.deadLetters(t, int(s.deadLettered()))
	seen := map[string]bool{}
	for _, l := range letters {
		require.True(t, wantDead[string(l.Value)], "dead letter %s is a record that was to succeed", l.Value)
		seen[string(l.Value)] = true
	}
	require.Len(t, seen, len(wantDead), "every record that was to fail is in the dead letter")
	fig.deadLetters = len(letters)
	return fig
}

func (s *faultScenario) deadLettered() int64 {
	n := s.src.Stats().DeadLettered
	for _, r := range s.rungs {
		n += r.Stats().DeadLettered
	}
	return n
}

// checkSamples is the oracle. A record of the source topic is done once its first
// attempt succeeded or the source tailer's producer acknowledged its rung or dead-letter
// record. A record of a rung, carrying attempt a of its origin, is done once attempt
// a+1 succeeded, or that rung's tailer got an acknowledgement for the origin's record
// of attempt a+1 (next rung, dead letter) or of attempt a (a hop to the next rung).
// Every offset below a sampled watermark, and every offset in a sampled Pebble Done
// set, must have been done before the sample was taken.
func (s *faultScenario) checkSamples(samples []sample) {
	t := s.t
	doneAt := map[watch]map[int32][]time.Time{} // by offset; zero: never done
	never := time.Time{}
	notYet := time.Now().Add(time.Hour) // later than any sample
	src := s.watches[0]
	doneAt[src] = map[int32][]time.Time{}
	for p, end := range s.end {
		times := make([]time.Time, end)
		for o := range end {
			id := fmt.Sprintf("%s/%d/%d", s.f.topic, p, o)
			times[o] = earliest(&s.successes, attemptKey{id, 1}, &s.srcAcks.acks, attemptKey{id, 1})
		}
		doneAt[src][p] = times
	}
	for i, w := range s.watches[1:] {
		doneAt[w] = map[int32][]time.Time{}
		for _, r := range readAll(t, s.f.brokers, w.topic) {
			id := header(r, delaystreams.HeaderOrigin)
			a, err := strconv.Atoi(header(r, delaystreams.HeaderAttempt))
			require.NoError(t, err, "rung record %s/%d/%d attempt", r.Topic, r.Partition, r.Offset)
			at := earliest(&s.successes, attemptKey{id, a + 1}, &s.rungAcks[i].acks, attemptKey{id, a + 1})
			if hop, ok := s.rungAcks[i].acks.get(attemptKey{id, a}); ok && (at.IsZero() || hop.Before(at)) {
				at = hop
			}
			times := doneAt[w][r.Partition]
			for int64(len(times)) <= r.Offset {
				times = append(times, never)
			}
			times[r.Offset] = at
			doneAt[w][r.Partition] = times
		}
	}
	// upTo[w][p][o] is when offsets 0..o were all done: the latest of their times.
	upTo := map[watch]map[int32][]time.Time{}
	for w, parts := range doneAt {
		upTo[w] = map[int32][]time.Time{}
		for p, times := range parts {
			acc := make([]time.Time, len(times))
			var latest time.Time
			for o, at := range times {
				if at.IsZero() {
					at = notYet
				}
				if at.After(latest) {
					latest = at
				}
				acc[o] = latest
			}
			upTo[w][p] = acc
		}
	}
	// belowDone reports whether every offset below wm was done by at.
	belowDone := func(w watch, p int32, wm int64, at time.Time) bool {
		acc := upTo[w][p]
		return wm <= 0 || wm <= int64(len(acc)) && !acc[wm-1].After(at)
	}
	// firstNotDone is the first offset of [from, to) not done by at, or -1.
	firstNotDone := func(w watch, p int32, from, to int64, at time.Time) int64 {
		times := doneAt[w][p]
		for off := from; off < to; off++ {
			if off >= int64(len(times)) || times[off].IsZero() || times[off].After(at) {
				return off
			}
		}
		return -1
	}
	checked := 0
	for _, sm := range samples {
		when := sm.at.Format(time.StampMicro)
		for p, wm := range sm.committed {
			if !belowDone(sm.watch, p, wm, sm.at) {
				t.Fatalf("group %s committed %d on partition %d at %s, but offset %d was not durable yet",
					sm.watch.group, wm, p, when, firstNotDone(sm.watch, p, 0, wm, sm.at))
			}
			checked++
		}
		for p, st := range sm.pebble {
			if !belowDone(sm.watch, p, st.Watermark, sm.at) {
				t.Fatalf("Pebble watermark of %s/%d was %d at %s, but offset %d was not durable yet",
					sm.watch.group, p, st.Watermark, when, firstNotDone(sm.watch, p, 0, st.Watermark, sm.at))
			}
			for _, r := range st.Done.Ranges() {
				if off := firstNotDone(sm.watch, p, r.Start, r.End, sm.at); off >= 0 {
					t.Fatalf("Pebble done set of %s/%d held %d at %s before it was durable", sm.watch.group, p, off, when)
				}
			}
			checked++
		}
	}
	require.Positive(t, checked, "the sampler saw no checkpoint at all")
}

// maxPebbleLead is how far, at most, the source's Pebble watermarks were ahead of its
// group commits (summed over partitions) in a sample taken before until.
func (s *faultScenario) maxPebbleLead(until time.Time) int64 {
	var lead int64
	for _, sm := range s.samples {
		if sm.watch != s.watches[0] || !sm.at.Before(until) {
			continue
		}
		var d int64
		for p, st := range sm.pebble {
			d += st.Watermark - sm.committed[p]
		}
		lead = max(lead, d)
	}
	return lead
}

// earliest is the earlier of the times a and b recorded for ka and kb; zero if neither.
func earliest(a *durableTimes, ka attemptKey, b *durableTimes, kb attemptKey) time.Time {
	ta, okA := a.get(ka)
	tb, okB := b.get(kb)
	switch {
	case okA && (!okB || ta.Before(tb)):
		return ta
	case okB:
		return tb
	}
	return time.Time{}
}

// readAll reads every record of topic, up to its end offsets now.
func readAll(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	end := kafkatest.EndOffsets(t, brokers, topic)
	want := 0
	for _, e := range end {
		want += int(e)
	}
	cl := kafkatest.Client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want && ctx.Err() == nil {
		out = append(out, cl.PollFetches(ctx).Records()...)
	}
	require.Len(t, out, want, "records of %s", topic)
	return out
}
