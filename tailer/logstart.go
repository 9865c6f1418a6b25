package tailer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrOffsetsLost is what Run returns (wrapped, naming the partitions) when the
// OffsetsLostFail policy stopped the tailer: a partition's resume offset was below its
// log start.
var ErrOffsetsLost = errors.New("resume offset below the log start: records were removed before they ran")

// checkLogStarts compares the resume offsets of newly assigned partitions (starts, by
// partition) with their log starts. A resume offset below the log start means the
// records between them were removed (retention, DeleteRecords) before they ran: that
// is logged as an error and counted in Stats.LostByRetention, and then, by the
// OffsetsLost policy, the partition resumes at the log start (offsets is changed to
// say so) or the tailer stops. It never resumes at the log end. When the log starts
// cannot be listed, the partitions resume where they were going to; the client's reset
// policy (the log start) still applies if the broker answers out of range.
func (t *Tailer) checkLogStarts(ctx context.Context, starts map[int32]int64, offsets map[int32]kgo.Offset) {
	cl := t.client.Load() // set once NewClient returned; the group joins after that
	if len(starts) == 0 || cl == nil {
		return
	}
	listed, err := kadm.NewClient(cl).ListStartOffsets(ctx, t.cfg.Topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		t.log.Warn("could not list log start offsets to check resume offsets against retention", "err", err)
		return
	}
	var failed []string
	for _, p := range slices.Sorted(mapKeys(starts)) {
		start := starts[p]
		lo, ok := listed.Lookup(t.cfg.Topic, p)
		if !ok || lo.Err != nil || start >= lo.Offset {
			continue
		}
		lost := lo.Offset - start
		t.stats.lostByRetention.Add(lost)
		t.log.Error("resume offset is below the log start: records were removed before they ran",
			"partition", p, "resume_offset", start, "log_start", lo.Offset, "records_lost", lost, "policy", t.cfg.OffsetsLost)
		if t.cfg.OffsetsLost == OffsetsLostFail {
			failed = append(failed, fmt.Sprintf("%d (resume %d, log start %d, %d records lost)", p, start, lo.Offset, lost))
			continue
		}
		offsets[p] = kgo.NewOffset().At(lo.Offset)
		t.mu.Lock()
		part := t.parts[p]
		t.mu.Unlock()
		if part != nil {
			part.mu.Lock()
			part.win = newWindow(lo.Offset)
			part.mu.Unlock()
		}
	}
	if len(failed) == 0 {
		return
	}
	// Read nothing of them, and stop: an operator decides.
	ps := make([]int32, 0, len(failed))
	for p := range starts {
		if lo, ok := listed.Lookup(t.cfg.Topic, p); ok && lo.Err == nil && starts[p] < lo.Offset {
			ps = append(ps, p)
		}
	}
	cl.PauseFetchPartitions(map[string][]int32{t.cfg.Topic: ps})
	err = fmt.Errorf("tailer %s: topic %s partitions %v: %w (offsets_lost is %q; set it to %q to resume at the log start)",
		t.cfg.Name, t.cfg.Topic, failed, ErrOffsetsLost, OffsetsLostFail, OffsetsLostEarliest)
	if t.offsetsLost.CompareAndSwap(nil, &err) {
		t.stopPoll()
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
