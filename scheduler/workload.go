package scheduler

import (
	"context"
	"fmt"
	"time"
)

// Header is one record header, carried through the scheduler untouched.
type Header struct {
	Key   string
	Value []byte
}

// Workload is one unit of work: run Function once with Payload. The scheduler knows
// nothing of where it came from; ID is an opaque, stable name used in logs and passed
// to functions (for a Kafka record, "<topic>/<partition>/<offset>" of the origin).
type Workload struct {
	ID       string
	Function string
	Key      []byte
	Payload  []byte
	Headers  []Header
	// Attempt is 1 for the first run of this workload.
	Attempt int
	// Priority orders workloads of one function; higher runs first. 0 is the default.
	Priority int32
	// Created is when the workload entered the system (a record's timestamp).
	Created time.Time
	// Source names where the workload came from, as a URI reference: the CloudEvents
	// source attribute HTTP functions receive. For a Kafka record it is
	// "kafka://<topic>" of the origin topic. Empty when unknown.
	Source string
}

// Size is the number of bytes the workload's key, payload and headers take.
func (w *Workload) Size() int {
	n := len(w.Key) + len(w.Payload)
	for _, h := range w.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// OutcomeKind is how one attempt of a workload ended.
type OutcomeKind uint8

const (
	// OutcomeSuccess: the function returned without error. The workload is done.
	OutcomeSuccess OutcomeKind = iota + 1
	// OutcomeRetriable: the attempt failed in a way another attempt may fix
	// (error, timeout, panic, lost worker, overload).
	OutcomeRetriable
	// OutcomeFatal: no attempt will ever succeed (explicit fatal error, bad input).
	OutcomeFatal
)

func (k OutcomeKind) String() string {
	switch k {
	case OutcomeSuccess:
		return "success"
	case OutcomeRetriable:
		return "retriable"
	case OutcomeFatal:
		return "fatal"
	default:
		return fmt.Sprintf("OutcomeKind(%d)", uint8(k))
	}
}

// Reason says why an attempt failed. Dead-letter records carry it as kasync-reason.
type Reason string

const (
	ReasonError           Reason = "error"            // the function returned an error
	ReasonFatal           Reason = "fatal"            // the function returned a fatal error
	ReasonTimeout         Reason = "timeout"          // the attempt ran past its timeout
	ReasonPanic           Reason = "panic"            // the function panicked
	ReasonWorkerLost      Reason = "worker-lost"      // the worker running it went away
	ReasonUnknownFunction Reason = "unknown-function" // no such function is configured
	ReasonTooLarge        Reason = "too-large"        // the workload is over the size limit
	ReasonInvalid         Reason = "invalid"          // the workload is malformed
	ReasonShutdown        Reason = "shutdown"         // the scheduler stopped before it ran
	// ReasonOverloaded: the downstream refused the attempt for lack of capacity (HTTP
	// 429 or 503, gRPC RESOURCE_EXHAUSTED, runtime.Overloaded); the adaptive
	// concurrency limit shrinks on it.
	ReasonOverloaded Reason = "overloaded"
)

// Outcome is the result of one attempt of a workload.
type Outcome struct {
	Kind   OutcomeKind
	Reason Reason // empty on success
	// Err is the error text of a failure, for logs and dead-letter records.
	Err string
	// RetryAfter, when positive, is the earliest the function asked to be retried.
	RetryAfter time.Duration
}

// Success is the outcome of an attempt that succeeded.
func Success() Outcome { return Outcome{Kind: OutcomeSuccess} }

// Retriable is the outcome of an attempt another attempt may fix.
func Retriable(reason Reason, err string) Outcome {
	return Outcome{Kind: OutcomeRetriable, Reason: reason, Err: err}
}

// Fatal is the outcome of a workload no attempt will ever run successfully.
func Fatal(reason Reason, err string) Outcome {
	return Outcome{Kind: OutcomeFatal, Reason: reason, Err: err}
}

// Pushed is a workload as a source hands it to a Stream: Token is the source's own
// reference for it, returned unchanged with its Result. The scheduler never reads it.
type Pushed struct {
	Token    uint64
	Workload *Workload
}

// Result is the outcome of a pushed workload.
type Result struct {
	Token   uint64
	Outcome Outcome
}

// Stream is one source's push stream into a scheduler: workloads go in, results come
// back (in any order) through the deliver function given when the stream was opened.
//
// A Stream is reliable for as long as it is open: every pushed workload gets exactly one
// Result delivered, unless the stream is closed first. An implementation over a network
// re-sends unanswered workloads after a reconnect, so a function may run more than once
// (at least once), but a Token's Result is delivered at most once.
type Stream interface {
	// Push hands workloads to the scheduler. It blocks while the scheduler has not
	// granted credit for them (flow control), until ctx is done or the stream is closed.
	// Workloads are not copied; the caller must not modify them until their Result.
	Push(ctx context.Context, batch []Pushed) error
	// Close ends the stream. Workloads without a Result yet never get one; deliver is
	// not called after Close returns.
	Close() error
}

// Executor runs attempts of workloads for one or more functions: in-process, on a remote
// worker, or over HTTP. It is the seam between the scheduler and runtime/.
type Executor interface {
	// Execute runs one attempt and returns its outcome. It applies timeout from the
	// moment the function starts (not while it waits for a worker). It returns when ctx
	// is done, with a retriable outcome, even if the function ignores cancellation.
	Execute(ctx context.Context, w *Workload, timeout time.Duration) Outcome
}
