package delaystreams

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/logrepeat"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// SourceReader is the tailer.Reader of a source topic: every record runs at once as
// attempt 1 of one function; a failed attempt goes where the Router decides (a rung or
// the dead letter), or, while the function's storm guard is on, is retried in place.
//
// An ordered SourceReader (NewOrderedSourceReader, for tailers in key or partition
// order) retries in place instead of through the ladder: a record on a rung would let
// the later records of its key overtake it. Each retry is the next attempt, at the due
// time the Router's policy gives (backoff with jitter, Retry-After honoured, MaxDelay
// cap); exhausted and fatal attempts go to the dead letter as usual.
type SourceReader struct {
	router   *Router
	function string
	priority int32
	inPlace  bool

	// topic and source cache the workload source of the last topic read: a tailer
	// reads one topic, so this spares a string per record. Only the poll loop calls
	// Next (a SourceReader never holds a record), so they need no lock.
	topic, source string
}

// NewSourceReader returns the reader of a source topic whose records run function,
// with priority unless a record's kasync-priority header says otherwise.
func NewSourceReader(r *Router, function string, priority int32) (*SourceReader, error) {
	if r == nil {
		return nil, errors.New("delaystreams: source reader: nil router")
	}
	if function == "" {
		return nil, errors.New("delaystreams: source reader: empty function; set tailers[].function")
	}
	return &SourceReader{router: r, function: function, priority: priority}, nil
}

// NewOrderedSourceReader is NewSourceReader for a tailer that keeps key or partition
// order: failed attempts retry in place, not through the delay rungs.
func NewOrderedSourceReader(r *Router, function string, priority int32) (*SourceReader, error) {
	s, err := NewSourceReader(r, function, priority)
	if err != nil {
		return nil, err
	}
	s.inPlace = true
	return s, nil
}

// KafkaSource is the workload source of a record of topic: "kafka://<topic>", the
// CloudEvents source that HTTP functions receive.
func KafkaSource(topic string) string { return "kafka://" + topic }

func (s *SourceReader) sourceOf(topic string) string {
	if topic != s.topic || s.source == "" {
		s.topic, s.source = topic, KafkaSource(topic)
	}
	return s.source
}

// Next runs rec at once: attempt 1, ID "<topic>/<partition>/<offset>".
func (s *SourceReader) Next(rec *kgo.Record, _ time.Time) tailer.Step {
	w := scheduler.Workload{
		ID:       originID(rec.Topic, rec.Partition, rec.Offset),
		Function: s.function,
		Key:      rec.Key,
		Payload:  rec.Value,
		Attempt:  1,
		Priority: s.priority,
		Created:  rec.Timestamp,
		Source:   s.sourceOf(rec.Topic),
	}
	if len(rec.Headers) > 0 {
		w.Priority = recordPriority(rec.Headers, s.priority)
		w.Headers = make([]scheduler.Header, len(rec.Headers))
		for i, h := range rec.Headers {
			w.Headers[i] = scheduler.Header{Key: h.Key, Value: h.Value}
		}
	}
	return tailer.Step{Action: tailer.ActionRun, Workload: w}
}

// Failed sends a failed attempt to a rung or the dead letter (Router.Decide). While the
// function's storm guard is on, a retriable failure is retried in place instead: the
// source partition stops feeding the ladder (DESIGN.md, "Failure-storm guard").
func (s *SourceReader) Failed(f *tailer.Failure) tailer.Step {
	if f.Storm && f.Outcome.Kind != scheduler.OutcomeFatal {
		return tailer.Step{Action: tailer.ActionRetry}
	}
	failure := &Failure{Record: f.Record, Function: f.Workload.Function, Attempt: f.Workload.Attempt,
		Outcome: f.Outcome, FirstFailure: f.FirstFailure, Priority: f.Workload.Priority}
	if s.inPlace {
		if d := s.router.Decide(failure); !d.DeadLetter {
			next := *f.Workload
			next.Attempt = ClampAttempt(int64(f.Workload.Attempt) + 1)
			return tailer.Step{Action: tailer.ActionRetry, Until: d.Due, Workload: next, FirstFailure: f.FirstFailure}
		}
	}
	return s.router.step(failure)
}

// RungReader is the tailer.Reader of one rung topic. A record becomes ready when it
// has waited its rung since the broker appended it (or at its due time, if that is
// sooner); then it hops to the next rung while its due time is more than the ladder's
// tolerance away, is held until due when it is closer, and runs as the next attempt
// once due. Its kasync headers are never trusted: see ParseMeta.
//
// Clocks: the rung wait starts at the record's timestamp, which the rung topic's
// LogAppendTime makes the broker's; the due time was written by the node that routed
// the record. A record runs when this node's clock says the due time has passed, so it
// can run early only by as much as this node's clock is ahead of that node's (and a
// hop early by as much as it is ahead of the broker's): with NTP, milliseconds.
type RungReader struct {
	router   *Router
	rung     time.Duration
	topic    string
	log      *slog.Logger
	lateness prometheus.Observer // the rung's kasync_delay_lateness_seconds; nil without metrics
	// repeats keeps lines about forged or broken rung records, which can come one per
	// record, to one of each kind every 30s with a count.
	repeats logrepeat.Limiter
}

// NewRungReader returns the reader of the router's rung i. A nil log means
// slog.Default().
func NewRungReader(r *Router, i int, log *slog.Logger) (*RungReader, error) {
	if r == nil {
		return nil, errors.New("delaystreams: rung reader: nil router")
	}
	if i < 0 || i >= r.ladder.Len() {
		return nil, fmt.Errorf("delaystreams: rung reader: rung %d does not exist; the ladder has rungs 0 to %d", i, r.ladder.Len()-1)
	}
	if log == nil {
		log = slog.Default()
	}
	topic := r.rungTopics[i]
	return &RungReader{router: r, rung: r.ladder.Rung(i), topic: topic, log: log.With("rung", topic), lateness: r.lateness(i)}, nil
}

// Topic is the rung topic the reader reads.
func (r *RungReader) Topic() string { return r.topic }

// Next decides about a rung record at now: wait until it is ready, hop to the next rung,
// wait until due, run it as attempt kasync-attempt+1, or, when its kasync headers cannot
// be routed at all, dead-letter it with reason invalid-headers.
func (r *RungReader) Next(rec *kgo.Record, now time.Time) tailer.Step {
	m, fixed, err := ParseMeta(rec.Headers, now, r.router.MaxDelay())
	if err != nil {
		r.repeats.Log(r.log, slog.LevelWarn, "unusable headers", "rung record with unusable kasync headers goes to the dead letter",
			"partition", rec.Partition, "offset", rec.Offset, "err", err)
		f := InvalidHeadersFailure(rec, m, err)
		return r.router.step(&f)
	}
	if m.Scheduled && m.Origin.Topic == "" {
		// A submitted task on its first rung: this record is where it was born.
		m.Origin = Origin{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
	}
	ready := rec.Timestamp.Add(r.rung)
	if m.Due.Before(ready) {
		ready = m.Due
	}
	if now.Before(ready) {
		return tailer.Step{Action: tailer.ActionWait, Until: ready}
	}
	next, _ := r.router.hopAt(rec, m, now)
	if next != nil {
		return tailer.Step{Action: tailer.ActionProduce, Record: next, To: tailer.ToNextRung}
	}
	// m.Due, not the hop decision's due rounded up to the millisecond: a due time that
	// ParseMeta took as "now" (garbage or missing) must not move ahead with the clock.
	if now.Before(m.Due) {
		return tailer.Step{Action: tailer.ActionWait, Until: m.Due}
	}
	if r.lateness != nil {
		r.lateness.Observe(now.Sub(m.Due).Seconds()) // ≥ 0: not due was held just above
	}
	if len(fixed) > 0 {
		r.repeats.Log(r.log, slog.LevelWarn, "clamped headers", "rung record had kasync headers out of bounds; they were clamped",
			"partition", rec.Partition, "offset", rec.Offset, "origin", m.Origin.String(), "fixed", strings.Join(fixed, "; "))
	}
	w := scheduler.Workload{
		ID:       m.Origin.String(),
		Function: m.Function,
		Key:      rec.Key,
		Payload:  rec.Value,
		Attempt:  m.nextAttempt(),
		Priority: m.Priority,
		Created:  m.FirstFailure,
		Source:   KafkaSource(m.Origin.Topic),
	}
	for _, h := range rec.Headers {
		if !strings.HasPrefix(h.Key, headerPrefix) {
			w.Headers = append(w.Headers, scheduler.Header{Key: h.Key, Value: h.Value})
		}
	}
	return tailer.Step{Action: tailer.ActionRun, Workload: w, FirstFailure: m.FirstFailure}
}

// Failed sends a failed attempt of a rung record to the next rung or the dead letter,
// with the origin of the source record. While the function's storm guard is on, a
// retriable failure goes back to a rung without using up an attempt: a rung partition
// holds many functions' records, so it is never paused for one of them.
func (r *RungReader) Failed(f *tailer.Failure) tailer.Step {
	origin, err := ParseOrigin(f.Workload.ID)
	if err != nil {
		origin = Origin{} // the rung record's own position; never happens for IDs Next wrote
	}
	attempt := f.Workload.Attempt
	if f.Storm && f.Outcome.Kind != scheduler.OutcomeFatal {
		attempt-- // the attempt that just failed is not counted (ClampAttempt keeps it ≥ 1)
	}
	return r.router.step(&Failure{Record: f.Record, Function: f.Workload.Function, Attempt: attempt,
		Outcome: f.Outcome, FirstFailure: f.FirstFailure, Origin: origin, Priority: f.Workload.Priority})
}

// step is the tailer step that makes f durable where Decide sends it.
func (r *Router) step(f *Failure) tailer.Step {
	d := r.Decide(f)
	s := tailer.Step{Action: tailer.ActionProduce, Record: r.Record(f, d), To: tailer.ToRung}
	if d.DeadLetter {
		s.To, s.Reason = tailer.ToDeadLetter, d.Reason
	}
	return s
}

// originID is "<topic>/<partition>/<offset>", built in one allocation (the string):
// the bytes are assembled on the stack unless the topic is very long.
func originID(topic string, partition int32, offset int64) string {
	var buf [128]byte
	b := append(buf[:0], topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, offset, 10)
	return string(b)
}
