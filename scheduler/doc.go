// Package scheduler admits workloads, queues them per function and dispatches
// them to executors, returning one outcome per workload. It is source-agnostic: it
// knows workloads and outcomes, not Kafka, offsets or checkpoints, and imports none
// of franz-go, tailer, checkpoint or runtime.
//
// The parts:
//
//   - Workload, Outcome, Stream, Executor (workload.go) are the shared contract
//     between sources, the scheduler and runtimes.
//   - queue is the pure order of one function's waiting workloads (per-priority
//     FIFO rings, with aging), tested without goroutines.
//   - Scheduler is the shell around the queues: admission, a lazily grown pool of
//     at most Concurrency worker goroutines per function, shutdown.
//   - Local adapts a Scheduler to tailer.Scheduler in-process: push streams with
//     credit flow control and batched delivery of results. The gRPC client in
//     scheduler/rpc is the same seam over the network; both pass the conformance
//     suite in scheduler/schedulertest.
//
// What a caller must do:
//
//  1. Give every Function a unique Name, Concurrency >= 1, Timeout > 0 and an
//     Executor whose Execute returns once its ctx is done (Close waits for it).
//  2. Not modify a workload between Enqueue (or Push) and its outcome.
//  3. Keep done callbacks and deliver funcs short: they run on the goroutines that
//     dispatch the next attempts and deliver the next results.
//  4. Close a Local stream from outside its deliver func.
//
// What the package guarantees:
//
//  1. Exactly one outcome per enqueued workload: done is called once, with the
//     attempt's outcome, a refusal, or Retriable(ReasonShutdown).
//  2. Bad input never becomes an error or a panic: a nil or malformed workload is
//     Fatal(ReasonInvalid), an unconfigured function Fatal(ReasonUnknownFunction),
//     a workload over MaxWorkloadBytes Fatal(ReasonTooLarge), each with an Err that
//     names the problem (DESIGN invariant 6: the source dead-letters it and moves on).
//  3. At most Concurrency attempts of a function run at once, and a function never
//     has more worker goroutines than its Concurrency, so the scheduler runs at most
//     sum(Concurrency) + 1 goroutines, plus one per open Local stream.
//  4. A function's waiting workloads start highest Priority first, in admission order
//     within a priority; every tenth start takes the oldest waiting workload of any
//     priority, so a flood of high priorities never starves a low one
//     (TestQueueModel, TestQueueLowPriorityIsNotStarved, TestPrioritiesUnderContention).
//  5. A panicking executor or an outcome of no known Kind is recorded as a
//     retriable outcome (ReasonPanic, ReasonError) and logged at error level; the
//     worker lives on.
//  6. While the scheduler is open, done is never called on Enqueue's caller's
//     stack; after Close has begun it is, as no scheduler goroutine is left.
//  7. Close stops dispatching, answers every queued workload with
//     Retriable(ReasonShutdown), cancels running attempts' ctx, and returns only
//     when every done has been called and every goroutine has exited.
//  8. Bounded memory (DESIGN invariant 4): a Local stream has at most its window of
//     workloads queued, running or with a result awaiting delivery; a queue's memory
//     shrinks back after a burst.
//  9. A Local stream calls deliver from one goroutine, never after Close returns,
//     and with a slice the receiver may keep.
//  10. A function with a Rate starts at most Rate attempts per second (a token
//     bucket holding a tenth of a second's starts), over all its workers; a wait for
//     a token ends with Close (TestRateLimit).
package scheduler
