package delaystreams

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Scheduled builds the rung record of a task submitted to run at due, later than the
// ladder's tolerance from now (kasync submit --delay, --run-at): src's key, value and
// headers (less any kasync-* ones) with kasync-function, kasync-attempt 0, kasync-due,
// kasync-first-failure (now: when the task was created), kasync-priority (when not 0)
// and kasync-scheduled, and no kasync-origin: the rung record's own position, known once
// the broker acknowledged it, is the task's origin and workload id. The rung is
// Ladder.Pick(due − now), or the smallest rung when due is within the tolerance (the
// reader then holds it until due). due is clamped to now+MaxDelay and rounded up to the
// millisecond. The caller produces the record (Produce) and checks the acks.
func (r *Router) Scheduled(src *kgo.Record, function string, priority int32, due time.Time) (*kgo.Record, Decision) {
	now := r.now()
	due = ceilMilli(ClampDue(due, now, r.maxDelay))
	rung, ok := r.ladder.Pick(due.Sub(now))
	if !ok {
		rung = 0
	}
	d := Decision{Topic: r.rungTopics[rung], Rung: rung, Due: due}
	return kasyncRecord(d.Topic, src, outHeaders{
		Function:     function,
		Due:          due,
		FirstFailure: now,
		Priority:     priority,
		Scheduled:    true,
	}), d
}

// Tolerance is the ladder's tolerance: a task due within it of now runs now.
func (r *Router) Tolerance() time.Duration { return r.ladder.Tolerance() }

// nextAttempt is the attempt a rung record runs as when due: 1 for a scheduled task
// that has not run, else the attempt after the one that failed.
func (m Meta) nextAttempt() int {
	if m.Scheduled {
		return 1
	}
	return ClampAttempt(int64(m.Attempt) + 1)
}
