package delaystreams

import (
	"context"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
)

var testNow = time.UnixMilli(1_790_000_000_000)

// idleClient is a client that is never asked to produce (pure tests).
func idleClient(t testing.TB) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// testRouter routes with the default ladder (tolerance 1s), prefix kasync.delay, dead
// letter "dlq", the clock at testNow and rand() always r.
func testRouter(t testing.TB, policies map[string]RetryPolicy, r float64) *Router {
	t.Helper()
	rt, err := NewRouter(idleClient(t), RouterConfig{
		Ladder:      mustLadder(t, DefaultRungs(), time.Second),
		TopicPrefix: "kasync.delay",
		DeadLetter:  "dlq",
		Policies:    policies,
		Now:         func() time.Time { return testNow },
		Rand:        func() float64 { return r },
	})
	require.NoError(t, err)
	return rt
}

func TestNewRouterRejects(t *testing.T) {
	t.Parallel()
	_, err := NewRouter(nil, RouterConfig{
		TopicPrefix: "kasync.delay", DeadLetter: "bad topic", MaxDelay: -time.Second,
		Policies: map[string]RetryPolicy{"f": {MaxAttempts: 0, Backoff: []time.Duration{time.Second}}},
	})
	require.Error(t, err)
	for _, w := range []string{
		"router: nil client",
		"MaxDelay -1s is negative",
		"Ladder is nil; build one with NewLadder",
		`DeadLetter "bad topic" contains ' '`,
		`Policies["f"] (functions[f].retry): delaystreams: retry policy: MaxAttempts (retry.max_attempts) 0 is out of range`,
	} {
		require.ErrorContains(t, err, w)
	}

	_, err = NewRouter(idleClient(t), RouterConfig{Ladder: mustLadder(t, DefaultRungs(), 0), DeadLetter: "dlq"})
	require.ErrorContains(t, err, "TopicPrefix is empty; set delay.topic_prefix")
	_, err = NewRouter(idleClient(t), RouterConfig{Ladder: mustLadder(t, DefaultRungs(), 0), TopicPrefix: "a/b", DeadLetter: "dlq"})
	require.ErrorContains(t, err, `rung 0: topic "a/b.30s" contains '/'`)

	rt, err := NewRouter(idleClient(t), RouterConfig{Ladder: mustLadder(t, DefaultRungs(), 0), TopicPrefix: "p", DeadLetter: "dlq"})
	require.NoError(t, err)
	require.Equal(t, DefaultMaxDelay, rt.MaxDelay())
	require.Equal(t, []string{"p.30s", "p.1m", "p.5m", "p.30m"}, rt.RungTopics())
}

func TestDecide(t *testing.T) {
	t.Parallel()
	policies := map[string]RetryPolicy{
		"charge": {MaxAttempts: 4, Backoff: []time.Duration{30 * time.Second, 5 * time.Minute}},
		"once":   {MaxAttempts: 1, Backoff: []time.Duration{time.Minute}},
		"quick":  {MaxAttempts: 9, Backoff: []time.Duration{200 * time.Millisecond, 5 * time.Second}},
		"later":  {MaxAttempts: 9, Backoff: []time.Duration{30 * 24 * time.Hour}},
	}
	rt := testRouter(t, policies, 0.5)
	retry := func(fn string, attempt int, retryAfter time.Duration) *Failure {
		o := scheduler.Retriable(scheduler.ReasonError, "e")
		o.RetryAfter = retryAfter
		return &Failure{Record: &kgo.Record{}, Function: fn, Attempt: attempt, Outcome: o}
	}
	fatal := func(reason scheduler.Reason) *Failure {
		return &Failure{Record: &kgo.Record{}, Function: "charge", Attempt: 1, Outcome: scheduler.Fatal(reason, "e")}
	}
	dead := func(reason string) Decision {
		return Decision{DeadLetter: true, Reason: reason, Topic: "dlq", Rung: -1}
	}
	rung := func(i int, topic string, delay time.Duration) Decision {
		return Decision{Topic: "kasync.delay." + topic, Rung: i, Due: testNow.Add(delay)}
	}
	for _, tc := range []struct {
		name string
		f    *Failure
		want Decision
	}{
		{"fatal", fatal(scheduler.ReasonFatal), dead("fatal")},
		{"fatal without a reason", &Failure{Function: "charge", Attempt: 1, Outcome: scheduler.Outcome{Kind: scheduler.OutcomeFatal}}, dead("fatal")},
		{"fatal keeps its reason", fatal(scheduler.ReasonTooLarge), dead("too-large")},
		{"fatal on the first attempt of an unknown function", &Failure{Function: "nope", Attempt: 1, Outcome: scheduler.Fatal(scheduler.ReasonUnknownFunction, "")}, dead("unknown-function")},
		{"unknown function, retriable", retry("nope", 1, 0), dead("unknown-function")},
		{"first failure: first backoff", retry("charge", 1, 0), rung(0, "30s", 30*time.Second)},
		{"second failure: second backoff", retry("charge", 2, 0), rung(2, "5m", 5*time.Minute)},
		{"the last backoff repeats", retry("charge", 3, 0), rung(2, "5m", 5*time.Minute)},
		{"exhausted at max_attempts", retry("charge", 4, 0), dead("exhausted")},
		{"past max_attempts", retry("charge", 40, 0), dead("exhausted")},
		{"forged attempt is clamped, not trusted", retry("charge", -7, 0), rung(0, "30s", 30*time.Second)},
		{"max_attempts 1: no retries", retry("once", 1, 0), dead("exhausted")},
		{"retry-after overrides a shorter backoff", retry("charge", 1, 10*time.Minute), rung(2, "5m", 10*time.Minute)},
		{"retry-after shorter than the backoff does not shorten it", retry("charge", 1, time.Second), rung(0, "30s", 30*time.Second)},
		{"retry-after of a year is capped at MaxDelay", retry("charge", 1, 365*24*time.Hour), rung(3, "30m", DefaultMaxDelay)},
		{"backoff above MaxDelay is capped", retry("later", 1, 0), rung(3, "30m", DefaultMaxDelay)},
		{"a delay below the smallest rung still takes it", retry("quick", 2, 0), rung(0, "30s", 5*time.Second)},
		{"a delay within the tolerance still leaves the partition", retry("quick", 1, 0), rung(0, "30s", 200*time.Millisecond)},
		{"a zero outcome kind is retried, never lost", &Failure{Function: "charge", Attempt: 1}, rung(0, "30s", 30*time.Second)},
	} {
		got := rt.Decide(tc.f)
		require.Equal(t, tc.want.DeadLetter, got.DeadLetter, tc.name)
		require.Equal(t, tc.want.Reason, got.Reason, tc.name)
		require.Equal(t, tc.want.Topic, got.Topic, tc.name)
		require.Equal(t, tc.want.Rung, got.Rung, tc.name)
		require.True(t, tc.want.Due.Equal(got.Due), "%s: due %v, want %v", tc.name, got.Due, tc.want.Due)
	}
}

func TestDecideJitterAndRounding(t *testing.T) {
	t.Parallel()
	p := map[string]RetryPolicy{"f": {MaxAttempts: 5, Backoff: []time.Duration{time.Minute}, Jitter: 0.5}}
	lo := testRouter(t, p, 0).Decide(&Failure{Function: "f", Attempt: 1})
	hi := testRouter(t, p, math.Nextafter(1, 0)).Decide(&Failure{Function: "f", Attempt: 1})
	mid := testRouter(t, p, 0.5).Decide(&Failure{Function: "f", Attempt: 1})
	require.True(t, lo.Due.Equal(testNow.Add(45*time.Second)), "r=0: d·(1−J/2), got %v", lo.Due.Sub(testNow))
	require.True(t, mid.Due.Equal(testNow.Add(time.Minute)))
	require.True(t, hi.Due.Equal(testNow.Add(75*time.Second)), "r→1: d·(1+J/2) rounded up to the ms, got %v", hi.Due.Sub(testNow))
	require.Equal(t, 0, lo.Rung, "45s takes 30s")
	require.Equal(t, 1, hi.Rung, "75s takes 1m")

	// The due time is rounded up to the millisecond, never down.
	odd := map[string]RetryPolicy{"f": {MaxAttempts: 5, Backoff: []time.Duration{30*time.Second + 1}}}
	d := testRouter(t, odd, 0).Decide(&Failure{Function: "f", Attempt: 1})
	require.True(t, d.Due.Equal(testNow.Add(30*time.Second+time.Millisecond)), "got %v", d.Due.Sub(testNow))
}

func TestRecordHeaders(t *testing.T) {
	t.Parallel()
	rt := testRouter(t, map[string]RetryPolicy{"charge": {MaxAttempts: 5, Backoff: []time.Duration{time.Minute}}}, 0)
	src := &kgo.Record{
		Topic: "orders", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{
			{Key: "trace", Value: []byte("t1")},
			{Key: HeaderAttempt, Value: []byte("-1")},               // forged
			{Key: HeaderDue, Value: []byte("99999999999999")},       // forged
			{Key: HeaderReason, Value: []byte("none")},              // forged
			{Key: "kasync-something-new", Value: []byte("dropped")}, // any kasync-* is ours
			{Key: "trace", Value: []byte("t2")},
		},
	}
	f := &Failure{Record: src, Function: "charge", Attempt: 2, Outcome: scheduler.Retriable(scheduler.ReasonTimeout, strings.Repeat("x", 5000))}
	d := rt.Decide(f)
	rec := rt.Record(f, d)
	require.Equal(t, "kasync.delay.1m", rec.Topic)
	require.Equal(t, "k", string(rec.Key), "the key is kept, so the partitioning is too")
	require.Equal(t, "v", string(rec.Value))
	require.Equal(t, []kgo.RecordHeader{
		{Key: "trace", Value: []byte("t1")},
		{Key: "trace", Value: []byte("t2")},
		{Key: HeaderFunction, Value: []byte("charge")},
		{Key: HeaderAttempt, Value: []byte("2")},
		{Key: HeaderDue, Value: []byte(strconv.FormatInt(testNow.Add(time.Minute).UnixMilli(), 10))},
		{Key: HeaderOrigin, Value: []byte("orders/3/42")},
		{Key: HeaderFirstFailure, Value: []byte(strconv.FormatInt(testNow.UnixMilli(), 10))},
		{Key: HeaderError, Value: []byte(truncateError(strings.Repeat("x", 5000)))},
	}, rec.Headers, "forged kasync headers are replaced, not duplicated; no kasync-reason on a rung")
	require.Len(t, rec.Headers[7].Value, MaxErrorBytes)

	// A rung record failing again keeps the origin and first failure it carries.
	first := testNow.Add(-time.Hour)
	f2 := &Failure{Record: rec, Function: "charge", Attempt: 3, Outcome: scheduler.Retriable(scheduler.ReasonError, "again"),
		FirstFailure: first, Origin: Origin{Topic: "orders", Partition: 3, Offset: 42}}
	h := headerMap(rt.Record(f2, rt.Decide(f2)))
	require.Equal(t, []string{"orders/3/42"}, h[HeaderOrigin])
	require.Equal(t, []string{strconv.FormatInt(first.UnixMilli(), 10)}, h[HeaderFirstFailure])
	require.Equal(t, []string{"3"}, h[HeaderAttempt])
	require.Equal(t, []string{"again"}, h[HeaderError])
	require.Equal(t, []string{"t1", "t2"}, h["trace"])
}

func TestHop(t *testing.T) {
	t.Parallel()
	rt := testRouter(t, nil, 0)
	rec := &kgo.Record{Topic: "kasync.delay.30m", Key: []byte("k"), Value: []byte("v"), Headers: append([]kgo.RecordHeader{{Key: "u", Value: []byte("1")}}, goodHeaders()...)}
	m := Meta{Function: "charge", Attempt: 3, Due: testNow.Add(7 * time.Minute), Origin: Origin{Topic: "orders", Partition: 2, Offset: 77},
		FirstFailure: testNow.Add(-time.Hour), LastError: "boom"}
	out, d := rt.Hop(rec, m)
	require.Equal(t, Decision{Topic: "kasync.delay.5m", Rung: 2, Due: m.Due}, d)
	require.Equal(t, "kasync.delay.5m", out.Topic)
	require.Equal(t, "k", string(out.Key))
	require.Equal(t, "v", string(out.Value))
	back, fixed, err := ParseMeta(out.Headers, testNow, rt.MaxDelay())
	require.NoError(t, err)
	require.Empty(t, fixed)
	require.Equal(t, m, back, "due, attempt, origin, first failure and error travel unchanged")
	require.Equal(t, []string{"1"}, headerMap(out)["u"])
	require.Len(t, out.Headers, 8, "two user headers and six kasync headers, none duplicated")

	// Below the smallest rung but above the tolerance: the smallest rung.
	m.Due = testNow.Add(10 * time.Second)
	_, d = rt.Hop(rec, m)
	require.Equal(t, 0, d.Rung)

	// Due already, or within the tolerance: no hop.
	for _, due := range []time.Time{testNow.Add(time.Second), testNow, testNow.Add(-time.Hour)} {
		m.Due = due
		out, d = rt.Hop(rec, m)
		require.Nil(t, out)
		require.Equal(t, Decision{Rung: -1, Due: due}, d)
	}

	// A forged due time is clamped even if the caller did not.
	m.Due = testNow.AddDate(5, 0, 0)
	out, d = rt.Hop(rec, m)
	require.Equal(t, 3, d.Rung)
	require.True(t, d.Due.Equal(testNow.Add(DefaultMaxDelay)))
	require.Equal(t, []string{strconv.FormatInt(testNow.Add(DefaultMaxDelay).UnixMilli(), 10)}, headerMap(out)[HeaderDue])
}

// routeSetup starts a broker, creates rung topics for a 20ms, 50ms, 200ms ladder and a
// dead-letter topic with EnsureTopics, and returns a router producing with a durable
// producer that gives up on a record after a short delivery timeout, and the registry
// of its metrics.
func routeSetup(t *testing.T, createDeadLetter bool) (*Router, []string, string, *prometheus.Registry) {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	prefix := kafkatest.TopicName(t)
	dlq := prefix + "-dlq"
	rungs := []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}
	if createDeadLetter {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		require.NoError(t, EnsureTopics(ctx, kafkatest.Admin(t, brokers), TopicPlan{Prefix: prefix, Rungs: rungs, DeadLetter: dlq, Partitions: 2}, slog.New(slog.DiscardHandler)))
	}
	cl := kafkatest.Client(t, brokers, append(kafka.ProducerOpts(), kgo.RecordDeliveryTimeout(time.Second))...)
	reg := prometheus.NewRegistry()
	rt, err := NewRouter(cl, RouterConfig{
		Ladder:      mustLadder(t, rungs, 2*time.Millisecond),
		TopicPrefix: prefix,
		DeadLetter:  dlq,
		Policies: map[string]RetryPolicy{
			"charge": {MaxAttempts: 3, Backoff: []time.Duration{20 * time.Millisecond, 60 * time.Millisecond, 250 * time.Millisecond}},
		},
		Registerer: reg,
	})
	require.NoError(t, err)
	return rt, brokers, dlq, reg
}

func TestRouteLandsRecords(t *testing.T) {
	t.Parallel()
	rt, brokers, dlq, reg := routeSetup(t, true)
	src := func(off int64) *kgo.Record {
		return &kgo.Record{Topic: "orders", Partition: 0, Offset: off, Key: []byte("k" + strconv.FormatInt(off, 10)), Value: []byte("v"),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t")}, {Key: HeaderAttempt, Value: []byte("-1")}}}
	}
	fs := []Failure{
		{Record: src(0), Function: "charge", Attempt: 1, Outcome: scheduler.Retriable(scheduler.ReasonError, "e0")},
		{Record: src(1), Function: "charge", Attempt: 2, Outcome: scheduler.Retriable(scheduler.ReasonTimeout, "e1")},
		{Record: src(2), Function: "charge", Attempt: 1, Outcome: func() scheduler.Outcome {
			o := scheduler.Retriable(scheduler.ReasonError, "e2")
			o.RetryAfter = time.Second
			return o
		}()},
		{Record: src(3), Function: "charge", Attempt: 3, Outcome: scheduler.Retriable(scheduler.ReasonError, "e3")},
		{Record: src(4), Function: "charge", Attempt: 1, Outcome: scheduler.Fatal(scheduler.ReasonFatal, "e4")},
		{Record: src(5), Function: "nope", Attempt: 1, Outcome: scheduler.Retriable(scheduler.ReasonError, "e5")},
	}
	before := time.Now()
	ds, errs := rt.Route(t.Context(), fs)
	for i, err := range errs {
		require.NoError(t, err, "failure %d", i)
	}
	topics := rt.RungTopics()
	wantTopic := []string{topics[0], topics[1], topics[2], dlq, dlq, dlq}
	wantReason := []string{"", "", "", "exhausted", "fatal", "unknown-function"}
	for i, d := range ds {
		require.Equal(t, wantTopic[i], d.Topic, "failure %d", i)
		require.Equal(t, wantReason[i], d.Reason, "failure %d", i)
	}
	require.False(t, ds[2].Due.Before(before.Add(time.Second)), "retry-after is honoured")
	require.Equal(t, map[string]float64{
		"function=charge,reason=exhausted":  1,
		"function=charge,reason=fatal":      1,
		"function=,reason=unknown-function": 1, // "nope" is no configured function
	}, deadLetterCounts(t, reg), "each acknowledged dead letter is counted once; rung records are not")
	require.Equal(t, []DeadLetterCount{
		{Function: "", Reason: "unknown-function", Count: 1},
		{Function: "charge", Reason: "exhausted", Count: 1},
		{Function: "charge", Reason: "fatal", Count: 1},
	}, rt.DeadLetterCounts(), "the status view reads the same counters, sorted")

	got := consume(t, brokers, len(fs), append(topics, dlq)...)
	for i := range fs {
		key := "k" + strconv.Itoa(i)
		rec, ok := got[key]
		require.True(t, ok, "record %s landed", key)
		require.Equal(t, wantTopic[i], rec.Topic, key)
		h := headerMap(rec)
		require.Equal(t, []string{"t"}, h["trace"], key)
		require.Equal(t, []string{fs[i].Function}, h[HeaderFunction], key)
		require.Equal(t, []string{strconv.Itoa(fs[i].Attempt)}, h[HeaderAttempt], key)
		require.Equal(t, []string{"orders/0/" + strconv.Itoa(i)}, h[HeaderOrigin], key)
		require.Equal(t, []string{fs[i].Outcome.Err}, h[HeaderError], key)
		require.Len(t, h[HeaderFirstFailure], 1, key)
		if ds[i].DeadLetter {
			require.Equal(t, []string{wantReason[i]}, h[HeaderReason], key)
			require.Empty(t, h[HeaderDue], key)
		} else {
			require.Empty(t, h[HeaderReason], key)
			require.Equal(t, []string{strconv.FormatInt(ds[i].Due.UnixMilli(), 10)}, h[HeaderDue], key)
		}
	}
}

// consume reads n records from the start of topics and returns them by key.
func consume(t *testing.T, brokers []string, n int, topics ...string) map[string]*kgo.Record {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got := map[string]*kgo.Record{}
	for len(got) < n {
		fetches := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consumed %d of %d records", len(got), n)
		fetches.EachRecord(func(r *kgo.Record) {
			_, dup := got[string(r.Key)]
			require.False(t, dup, "record %s landed twice", r.Key)
			got[string(r.Key)] = r
		})
	}
	return got
}

func TestRouteToMissingTopicFails(t *testing.T) {
	t.Parallel()
	rt, _, _, reg := routeSetup(t, false) // nothing created: no rung, no dead letter
	fs := []Failure{
		{Record: &kgo.Record{Topic: "orders", Offset: 1}, Function: "charge", Attempt: 1, Outcome: scheduler.Retriable(scheduler.ReasonError, "e")},
		{Record: &kgo.Record{Topic: "orders", Offset: 2}, Function: "charge", Attempt: 1, Outcome: scheduler.Fatal(scheduler.ReasonFatal, "e")},
		{Function: "charge", Attempt: 1}, // no record: a caller's bug, reported, not a panic
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ds, errs := rt.Route(ctx, fs)
	require.Len(t, ds, 3)
	for i, err := range errs {
		require.Error(t, err, "failure %d must not be reported durable", i)
	}
	require.ErrorContains(t, errs[0], "delaystreams: route orders/0/1 (function \"charge\") to "+rt.RungTopics()[0])
	require.ErrorContains(t, errs[2], "nil Record")
	require.NoError(t, ctx.Err(), "the delivery timeout, not the test's deadline, ended it")
	require.Empty(t, deadLetterCounts(t, reg), "a dead letter that failed is not counted")
}

func TestRouteCanceled(t *testing.T) {
	t.Parallel()
	rt, _, _, _ := routeSetup(t, true)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, errs := rt.Route(ctx, []Failure{{Record: &kgo.Record{Topic: "orders"}, Function: "charge", Attempt: 1}})
	require.ErrorIs(t, errs[0], context.Canceled, "a canceled route is never reported durable")
}
