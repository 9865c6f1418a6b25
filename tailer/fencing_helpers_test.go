package tailer_test

// Helpers of the fencing and revocation-under-faults tests: a slog handler that keeps
// the records a tailer logs, and a watch on a group's committed offsets that reports
// any that went backwards.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kasync/kasync/internal/kafkatest"
)

// logRecorder is a slog.Handler that keeps every record. Attributes added with With are
// dropped; the tests look at messages and at each record's own attributes.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// matching returns the records whose message starts with prefix.
func (l *logRecorder) matching(prefix string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Record
	for _, r := range l.recs {
		if strings.HasPrefix(r.Message, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// between counts the records whose message starts with prefix, logged after the first
// record starting with after and before the first starting with before that follows it
// (in the order they were logged); -1 if there is no such pair.
func (l *logRecorder) between(prefix, after, before string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, in := 0, false
	for _, r := range l.recs {
		switch {
		case !in && strings.HasPrefix(r.Message, after):
			in = true
		case in && strings.HasPrefix(r.Message, before):
			return n
		case in && strings.HasPrefix(r.Message, prefix):
			n++
		}
	}
	return -1
}

// attrOf returns the value of r's attribute key, and whether it has one.
func attrOf(r slog.Record, key string) (v slog.Value, ok bool) {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, ok = a.Value, true
			return false
		}
		return true
	})
	return v, ok
}

// commitWatch reads a group's committed offsets every 5ms until stopped and notes every
// partition whose commit went backwards between two reads. A read that fails is skipped.
type commitWatch struct {
	adm          *kadm.Client
	group, topic string
	quit         chan struct{}
	wg           sync.WaitGroup

	mu        sync.Mutex
	last      map[int32]int64
	samples   int
	backwards []string
}

func watchCommits(t *testing.T, brokers []string, group, topic string) *commitWatch {
	t.Helper()
	w := &commitWatch{adm: kafkatest.Admin(t, brokers), group: group, topic: topic,
		quit: make(chan struct{}), last: map[int32]int64{}}
	w.wg.Go(w.run)
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *commitWatch) run() {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resps, err := w.adm.FetchOffsets(ctx, w.group)
		cancel()
		if err != nil || resps.Error() != nil {
			continue
		}
		w.mu.Lock()
		w.samples++
		resps.Each(func(o kadm.OffsetResponse) {
			if o.Topic != w.topic {
				return
			}
			if prev, ok := w.last[o.Partition]; ok && o.At < prev {
				w.backwards = append(w.backwards, fmt.Sprintf("partition %d: %d after %d", o.Partition, o.At, prev))
			}
			w.last[o.Partition] = o.At
		})
		w.mu.Unlock()
	}
}

// stop ends the watch and returns how many reads it made and the commits that went
// backwards. Later calls return what the first one did.
func (w *commitWatch) stop() (samples int, backwards []string) {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples, w.backwards
}
