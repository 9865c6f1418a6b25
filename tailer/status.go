package tailer

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/scheduler"
)

// StatusSink records the task states of workloads (DESIGN.md, "Outcomes and task
// states"): the node gives one to the tailers whose workloads have a task status
// (submitted tasks, and a tailer's stream events when it turns task status on). The
// tailer calls it, when set, from its own goroutines, possibly at once; its methods
// must not block on I/O (they hand the transition to an asynchronous producer). The
// sink decides which workloads it records: it may ignore any.
//
// The calls follow the points where a workload's state changes in the tailer:
//
//   - Enqueued: the workload is handed to the scheduler for attempt w.Attempt.
//   - Succeeded: that attempt succeeded; the record is done.
//   - Failed: the attempt failed and the record carrying it on is durable: a rung
//     record (to is ToRung; it holds the next attempt's due time in kasync-due) or a
//     dead letter (to is ToDeadLetter). An ordered tailer's in-place retry reports
//     Failed with to ToRung, out nil and due the retry's time.
//
// A hop from rung to rung changes no state and is not reported.
type StatusSink interface {
	Enqueued(w *scheduler.Workload)
	Succeeded(w *scheduler.Workload)
	Failed(w *scheduler.Workload, o scheduler.Outcome, to Destination, out *kgo.Record, due time.Time)
}

// statusEnqueued reports the entries about to be pushed.
func (t *Tailer) statusEnqueued(entries []*entry) {
	for _, e := range entries {
		t.cfg.Status.Enqueued(&e.w)
	}
}

// statusProduced reports an entry whose failed attempt is now durable on a rung or in
// the dead letter. Entries the Reader produced without running them (a hop, or a rung
// record dead-lettered for its headers) have no workload and are not reported.
func (t *Tailer) statusProduced(e *entry) {
	if e.w.ID == "" || (e.x.to != ToRung && e.x.to != ToDeadLetter) {
		return
	}
	t.cfg.Status.Failed(&e.w, e.x.last, e.x.to, e.x.out, time.Time{})
}
