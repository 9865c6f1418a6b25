package delaystreams

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/scheduler"
)

// Names of the metrics a Router registers (DESIGN.md, "Metrics").
const (
	MetricDeadLetters = "kasync_dead_letter_total"
	MetricLateness    = "kasync_delay_lateness_seconds"
)

// OtherReason is the reason label of a dead letter whose kasync-reason is none of
// kasync's own (an SDK worker may send any reason); it keeps the label set bounded.
const OtherReason = "other"

// latenessBuckets span a hold timer's slack (a millisecond) to a hop that came a whole
// large rung late.
var latenessBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800}

// knownReasons are the kasync-reason values kept as they are in the reason label.
var knownReasons = func() map[string]bool {
	m := map[string]bool{ReasonExhausted: true, ReasonFatal: true, string(ReasonInvalidHeaders): true}
	for _, r := range []scheduler.Reason{scheduler.ReasonError, scheduler.ReasonFatal, scheduler.ReasonTimeout,
		scheduler.ReasonPanic, scheduler.ReasonWorkerLost, scheduler.ReasonUnknownFunction, scheduler.ReasonTooLarge,
		scheduler.ReasonInvalid, scheduler.ReasonShutdown, scheduler.ReasonOverloaded} {
		m[string(r)] = true
	}
	return m
}()

// routerMetrics are a Router's metrics; a Router without a Registerer has none.
type routerMetrics struct {
	deadLetters *prometheus.CounterVec
	lateness    []prometheus.Observer // by rung index, curried once: Observe takes no lock
}

// newRouterMetrics registers kasync_dead_letter_total{function,reason} and
// kasync_delay_lateness_seconds{rung} on reg, with a lateness series per rung from the
// start.
func newRouterMetrics(reg prometheus.Registerer, ladder *Ladder) (*routerMetrics, error) {
	m := &routerMetrics{
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricDeadLetters,
			Help: "Records written to the dead-letter topic, counted when the broker acknowledged them (acks=all), " +
				"by function (\"\" when kasync-function names no configured function) and kasync-reason (\"other\" when it is not one of kasync's).",
		}, []string{"function", "reason"}),
	}
	lateness := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: MetricLateness,
		Help: "Seconds from a rung record's due time (kasync-due) to the moment its rung reader released it to run as the next attempt; " +
			"one observation per re-delivery. Never negative: a record is not released before it is due.",
		Buckets: latenessBuckets,
	}, []string{"rung"})
	if err := reg.Register(m.deadLetters); err != nil {
		return nil, fmt.Errorf("delaystreams: router: register %s: %w", MetricDeadLetters, err)
	}
	if err := reg.Register(lateness); err != nil {
		reg.Unregister(m.deadLetters)
		return nil, fmt.Errorf("delaystreams: router: register %s: %w", MetricLateness, err)
	}
	for i := range ladder.Len() {
		m.lateness = append(m.lateness, lateness.WithLabelValues(RungName(ladder.Rung(i))))
	}
	return m, nil
}

// RungName is a rung as its topic and the rung label of kasync's metrics name it:
// "30s", "1m", "250ms" (see RungTopic).
func RungName(rung time.Duration) string { return durationName(rung) }

// deadLetterLabels are the function and reason labels of a dead letter: the last
// kasync-function and kasync-reason headers, bounded to the configured functions
// (else "") and kasync's own reasons (else OtherReason), so that forged or unexpected
// headers cannot grow the label set (or carry invalid UTF-8 into it).
func deadLetterLabels(rec *kgo.Record, functions map[string]RetryPolicy) (function, reason string) {
	reason = OtherReason
	for _, h := range rec.Headers {
		switch h.Key {
		case HeaderFunction:
			function = "" // the last one wins, as in ParseMeta
			if _, ok := functions[string(h.Value)]; ok {
				function = string(h.Value)
			}
		case HeaderReason:
			reason = OtherReason
			if knownReasons[string(h.Value)] {
				reason = string(h.Value)
			}
		}
	}
	return function, reason
}

// acked counts rec, which the broker has just acknowledged, if it is a dead letter.
func (r *Router) acked(rec *kgo.Record) {
	if r.metrics == nil || rec.Topic != r.deadLetter {
		return
	}
	r.metrics.deadLetters.WithLabelValues(deadLetterLabels(rec, r.policies)).Inc()
}

// lateness is the observer of rung i's lateness, or nil without metrics.
func (r *Router) lateness(i int) prometheus.Observer {
	if r.metrics == nil {
		return nil
	}
	return r.metrics.lateness[i]
}

// DeadLetterCount is how many dead letters of one function and reason a Router has
// written (acknowledged by the broker) since it was built: one series of
// kasync_dead_letter_total.
type DeadLetterCount struct {
	Function string // "" when kasync-function named no configured function
	Reason   string // OtherReason when kasync-reason was none of kasync's
	Count    uint64
}

// DeadLetterCounts reads the Router's kasync_dead_letter_total counters, sorted by
// function then reason, for status views. It is nil without a Registerer (no
// counters) and leaves out series that are still 0.
func (r *Router) DeadLetterCounts() []DeadLetterCount {
	if r.metrics == nil {
		return nil
	}
	ch := make(chan prometheus.Metric)
	go func() { // ends when Collect has sent every series; the loop below drains ch
		r.metrics.deadLetters.Collect(ch)
		close(ch)
	}()
	var out []DeadLetterCount
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil || d.GetCounter().GetValue() <= 0 {
			continue // a CounterVec's own series always write
		}
		c := DeadLetterCount{Count: uint64(d.GetCounter().GetValue())}
		for _, l := range d.GetLabel() {
			switch l.GetName() {
			case "function":
				c.Function = l.GetValue()
			case "reason":
				c.Reason = l.GetValue()
			}
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b DeadLetterCount) int {
		return cmp.Or(cmp.Compare(a.Function, b.Function), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}
