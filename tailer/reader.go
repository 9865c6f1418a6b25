package tailer

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/scheduler"
)

// Reader decides what each record read becomes, and where an attempt that did not
// succeed goes. The tailer owns the partition (window, watermark, pause, checkpoint); the
// Reader owns the meaning of the records. delaystreams implements one for source topics
// (every record runs at once; a failure goes to a delay rung or the dead letter) and one
// for rung topics (a record waits until due, then hops to the next rung or runs).
//
// A Reader is called from several goroutines of one tailer at once and must be safe for
// that. Its methods must not block on I/O: whatever must be made durable is returned as
// a Step and produced by the tailer.
type Reader interface {
	// Next is called for each record read, in offset order within its partition. A
	// record for which it returns ActionWait is held, with every later record of its
	// partition, and Next is called again for it once Until has come.
	Next(rec *kgo.Record, now time.Time) Step
	// Failed is called for an attempt that did not succeed. It returns ActionProduce (a
	// rung or the dead letter) or, only for a retriable outcome, ActionRetry (in place:
	// when the function's failure-storm guard is on, or to keep key or partition order).
	Failed(f *Failure) Step
}

// Action is what the tailer does with a record.
type Action uint8

const (
	// ActionRun pushes Step.Workload to the scheduler; the record is done when it
	// succeeds, and Reader.Failed decides otherwise.
	ActionRun Action = iota + 1
	// ActionProduce makes Step.Record durable (acks=all, through the Producer); the
	// record is done once the broker has acknowledged it.
	ActionProduce
	// ActionWait holds the record, and every later record of its partition, until
	// Step.Until; the partition's fetching pauses meanwhile.
	ActionWait
	// ActionRetry runs the workload again in place, holding its slot in the window. It
	// has two forms:
	//
	//   - Until zero: the failure-storm guard's "clog on purpose". The tailer waits a
	//     backoff (StormRetryMin..Max), pausing the partition, and runs the same attempt
	//     again: the failure is the function's, not the record's, so it does not use up
	//     the record's attempts.
	//   - Until set: an ordered retry (OrderKey, OrderPartition). The tailer runs
	//     Step.Workload (the next attempt) at Until; the partition keeps flowing and only
	//     the record's key (or, in partition order, the partition's next record) waits.
	ActionRetry
)

// Destination says what record an ActionProduce step writes, for counts and logs.
type Destination uint8

const (
	ToRung       Destination = iota + 1 // a failed attempt, to wait on a delay rung
	ToNextRung                          // a rung record, moved on to the next rung
	ToDeadLetter                        // the dead-letter topic
)

// Step is a Reader's decision about one record.
type Step struct {
	Action Action

	// ActionRun: the workload to run, and when its first attempt failed (zero for a
	// first attempt). ActionRetry with Until: the attempt to run then.
	Workload     scheduler.Workload
	FirstFailure time.Time

	// ActionProduce: the record to make durable, where it goes, and for dead letters
	// the reason (kasync-reason).
	Record *kgo.Record
	To     Destination
	Reason string

	// ActionWait: when to call Next again. ActionRetry: when to run Workload again (zero
	// for a storm-guard retry; see ActionRetry).
	Until time.Time
}

// Failure is an attempt that did not succeed.
type Failure struct {
	Record       *kgo.Record // the record as read
	Workload     *scheduler.Workload
	Outcome      scheduler.Outcome
	FirstFailure time.Time // when the workload first failed; never zero
	// Storm: the failure-storm guard of the workload's function is on.
	Storm bool
}

// Producer makes records durable: Produce returns one error per record, nil only once
// the broker has acknowledged it (acks=all, idempotent producer). delaystreams.Router
// implements it.
type Producer interface {
	Produce(ctx context.Context, recs []*kgo.Record) []error
}

// Guard is the failure-storm guard (delaystreams.Guard): it watches each function's
// outcomes and says when almost all of them fail.
type Guard interface {
	// Observe records an attempt of function: failed for a retriable failure, not for a
	// success (fatal outcomes are the record's fault and are not reported). It returns
	// whether the function's guard is on.
	Observe(function string, failed bool) bool
	// ObserveSuccesses records n successful attempts of function at once, as n calls
	// of Observe(function, false) would.
	ObserveSuccesses(function string, n int)
	// Active reports whether the function's guard is on.
	Active(function string) bool
}
