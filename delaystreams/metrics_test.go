package delaystreams

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// family gathers the metrics of one family from reg, by their labels written as
// "name=value,...", sorted by name.
func family(t testing.TB, reg prometheus.Gatherer, name string) map[string]*dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]*dto.Metric{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			out[strings.Join(labels, ",")] = m
		}
	}
	return out
}

// deadLetterCounts are the kasync_dead_letter_total counters in reg, by labels.
func deadLetterCounts(t testing.TB, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for labels, m := range family(t, reg, MetricDeadLetters) {
		out[labels] = m.GetCounter().GetValue()
	}
	return out
}

func TestDeadLetterLabels(t *testing.T) {
	t.Parallel()
	functions := map[string]RetryPolicy{"charge": {MaxAttempts: 1}}
	h := func(kv ...string) *kgo.Record {
		rec := &kgo.Record{}
		for i := 0; i < len(kv); i += 2 {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return rec
	}
	for _, tc := range []struct {
		name             string
		rec              *kgo.Record
		function, reason string
	}{
		{"configured function, own reason", h(HeaderFunction, "charge", HeaderReason, "exhausted"), "charge", "exhausted"},
		{"scheduler reason", h(HeaderFunction, "charge", HeaderReason, string(scheduler.ReasonTooLarge)), "charge", "too-large"},
		{"invalid headers", h(HeaderReason, string(ReasonInvalidHeaders)), "", "invalid-headers"},
		{"unconfigured function", h(HeaderFunction, "gone", HeaderReason, "unknown-function"), "", "unknown-function"},
		{"a worker's own reason", h(HeaderFunction, "charge", HeaderReason, "card-declined"), "charge", OtherReason},
		{"no reason", h(HeaderFunction, "charge"), "charge", OtherReason},
		{"not UTF-8", h(HeaderFunction, "\xff", HeaderReason, "\xfe"), "", OtherReason},
		{"the last header wins", h(HeaderFunction, "charge", HeaderFunction, "x", HeaderReason, "x", HeaderReason, "fatal"), "", "fatal"},
	} {
		fn, reason := deadLetterLabels(tc.rec, functions)
		require.Equal(t, tc.function, fn, tc.name)
		require.Equal(t, tc.reason, reason, tc.name)
	}
}

func TestRouterMetricsRegistration(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := RouterConfig{Ladder: mustLadder(t, DefaultRungs(), time.Second), TopicPrefix: "kasync.delay", DeadLetter: "dlq", Registerer: reg}
	_, err := NewRouter(idleClient(t), cfg)
	require.NoError(t, err)
	series := family(t, reg, MetricLateness)
	require.Len(t, series, 4, "a lateness series per rung from the start")
	for _, rung := range []string{"30s", "1m", "5m", "30m"} {
		require.Contains(t, series, "rung="+rung)
		require.Zero(t, series["rung="+rung].GetHistogram().GetSampleCount())
	}

	_, err = NewRouter(idleClient(t), cfg)
	var already prometheus.AlreadyRegisteredError
	require.ErrorAs(t, err, &already, "a second router on the same registry is refused, not a panic")
	require.ErrorContains(t, err, MetricDeadLetters)

	rt, err := NewRouter(idleClient(t), RouterConfig{Ladder: cfg.Ladder, TopicPrefix: "kasync.delay", DeadLetter: "dlq"})
	require.NoError(t, err)
	require.Nil(t, rt.metrics, "no Registerer, no metrics")
	require.Nil(t, rt.DeadLetterCounts(), "no Registerer, no counts")
	rr, err := NewRungReader(rt, 0, nil)
	require.NoError(t, err)
	require.Nil(t, rr.lateness)
}

// TestRungLateness: a rung record released to run is observed once, on its rung's
// series, with now − due; a record held (not ready, not due) or moved on to the next
// rung is not a re-delivery and is not observed.
func TestRungLateness(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	rt, err := NewRouter(idleClient(t), RouterConfig{
		Ladder:      mustLadder(t, DefaultRungs(), time.Second),
		TopicPrefix: "kasync.delay",
		DeadLetter:  "dlq",
		Policies:    map[string]RetryPolicy{"charge": {MaxAttempts: 5, Backoff: []time.Duration{time.Minute}}},
		Now:         func() time.Time { return testNow },
		Registerer:  reg,
	})
	require.NoError(t, err)
	rung, err := NewRungReader(rt, 1, nil) // 1m
	require.NoError(t, err)
	rec := func(due time.Time) *kgo.Record {
		f := &Failure{Record: &kgo.Record{Topic: "orders", Offset: 1}, Function: "charge", Attempt: 1,
			Outcome: scheduler.Retriable(scheduler.ReasonError, "e")}
		r := rt.Record(f, Decision{Topic: rung.Topic(), Rung: 1, Due: due})
		r.Timestamp = testNow
		return r
	}
	lateness := func() *dto.Histogram {
		return family(t, reg, MetricLateness)["rung=1m"].GetHistogram()
	}

	due := testNow.Add(time.Minute)
	require.Equal(t, tailer.ActionWait, rung.Next(rec(due), testNow.Add(30*time.Second)).Action, "not ready")
	require.Equal(t, tailer.ActionProduce, rung.Next(rec(testNow.Add(10*time.Minute)), testNow.Add(time.Minute)).Action, "hops on")
	require.Zero(t, lateness().GetSampleCount())

	require.Equal(t, tailer.ActionRun, rung.Next(rec(due), due.Add(1500*time.Millisecond)).Action)
	require.Equal(t, tailer.ActionRun, rung.Next(rec(due), due).Action, "exactly on time")
	h := lateness()
	require.Equal(t, uint64(2), h.GetSampleCount())
	require.InDelta(t, 1.5, h.GetSampleSum(), 1e-9)
	require.Zero(t, family(t, reg, MetricLateness)["rung=30s"].GetHistogram().GetSampleCount(), "only the reader's own rung")
}
