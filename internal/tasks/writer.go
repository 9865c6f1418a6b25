package tasks

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// Writer writes task state transitions to the task status topic, keyed by task id. It
// is the node's tailer.StatusSink: it records only workloads whose id names a tracked
// topic (WriterConfig.Tracked), and never blocks: a transition is handed to the
// producer's buffer (TryProduce), and one that does not fit, or fails, is counted in
// Dropped and logged at most once a minute. Task status is a view, not the task: a
// lost transition leaves it behind, never the work.
type Writer struct {
	cl      *kgo.Client
	topic   string
	tracked func(topic string) bool
	now     func() time.Time
	log     *slog.Logger

	dropped atomic.Int64
	mu      sync.Mutex
	lastLog time.Time
}

// WriterConfig configures a Writer.
type WriterConfig struct {
	Client *kgo.Client // a durable producer; the caller owns it
	Topic  string      // the task status topic
	// Tracked reports whether the workloads of a topic (the topic of their id) have a
	// task status: ingest topics, rungs (submitted tasks scheduled for later) and the
	// topics of tailers with task_status.
	Tracked func(topic string) bool
	Now     func() time.Time // default time.Now
	Logger  *slog.Logger     // default slog.Default()
}

// NewWriter returns a Writer.
func NewWriter(cfg WriterConfig) *Writer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Writer{cl: cfg.Client, topic: cfg.Topic, tracked: cfg.Tracked, now: cfg.Now, log: cfg.Logger}
}

var _ tailer.StatusSink = (*Writer)(nil)

// Dropped is how many transitions were not written.
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

func (w *Writer) track(wl *scheduler.Workload) bool {
	return wl.ID != "" && w.tracked(topicOf(wl.ID))
}

// Enqueued records that wl was handed to the scheduler.
func (w *Writer) Enqueued(wl *scheduler.Workload) {
	if !w.track(wl) {
		return
	}
	w.Write(Status{ID: wl.ID, Function: wl.Function, State: StateEnqueued, Attempts: wl.Attempt, CreatedMs: unixMs(wl.Created)})
}

// Succeeded records that wl's attempt succeeded.
func (w *Writer) Succeeded(wl *scheduler.Workload) {
	if !w.track(wl) {
		return
	}
	w.Write(Status{ID: wl.ID, Function: wl.Function, State: StateSuccess, Attempts: wl.Attempt, CreatedMs: unixMs(wl.Created)})
}

// Failed records a failed attempt of wl made durable: RETRIABLE_FAILURE with the next
// attempt's due time (a rung record's kasync-due, or due for an in-place retry), or
// FATAL_FAILURE with the dead letter's reason.
func (w *Writer) Failed(wl *scheduler.Workload, o scheduler.Outcome, to tailer.Destination, out *kgo.Record, due time.Time) {
	if !w.track(wl) {
		return
	}
	s := Status{ID: wl.ID, Function: wl.Function, State: StateRetriable, Attempts: wl.Attempt, LastError: o.Err,
		Reason: string(o.Reason), CreatedMs: unixMs(wl.Created), DueMs: unixMs(due)}
	if s.LastError == "" {
		s.LastError = string(o.Reason)
	}
	switch to {
	case tailer.ToDeadLetter:
		s.State, s.DueMs = StateFatal, 0
		if r := header(out, delaystreams.HeaderReason); r != "" {
			s.Reason = r
		}
	case tailer.ToRung:
		if ms, err := strconv.ParseInt(header(out, delaystreams.HeaderDue), 10, 64); err == nil {
			s.DueMs = ms
		}
	}
	w.Write(s)
}

// Write hands s to the producer, stamped with now as its update time.
func (w *Writer) Write(s Status) {
	s.UpdatedMs = w.now().UnixMilli()
	value, err := json.Marshal(s)
	if err != nil { // a Status always marshals
		w.drop(err)
		return
	}
	w.cl.TryProduce(context.Background(), &kgo.Record{Topic: w.topic, Key: []byte(s.ID), Value: value}, func(_ *kgo.Record, err error) {
		if err != nil {
			w.drop(err)
		}
	})
}

func (w *Writer) drop(err error) {
	n := w.dropped.Add(1)
	now := w.now()
	w.mu.Lock()
	logIt := now.Sub(w.lastLog) >= time.Minute
	if logIt {
		w.lastLog = now
	}
	w.mu.Unlock()
	if logIt {
		w.log.Warn("task status transition not written; GetTask may show an older state (repeats are not logged for a minute)",
			"topic", w.topic, "dropped_total", n, "err", err)
	}
}

func header(r *kgo.Record, key string) string {
	if r == nil {
		return ""
	}
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value)
		}
	}
	return ""
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// TopicSet is a Tracked function: the topics listed, and every topic with one of the
// prefixes.
func TopicSet(topics []string, prefixes ...string) func(string) bool {
	set := make(map[string]bool, len(topics))
	for _, t := range topics {
		set[t] = true
	}
	return func(topic string) bool {
		if set[topic] {
			return true
		}
		for _, p := range prefixes {
			if strings.HasPrefix(topic, p) {
				return true
			}
		}
		return false
	}
}
