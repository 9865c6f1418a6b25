// Package tasks is kasync's Tasks API: submitting single tasks (now, or for a later
// time) and the status of tasks (DESIGN.md, "Outcomes and task states"; issue 6).
//
// A pure core decides, without I/O or clock: Check says whether a submitted task is
// accepted and where it goes (the function's ingest topic, kasync.fn.<function>, or
// straight onto a delay rung); Merge folds a task's state transitions into its latest
// state, whatever order they arrive in. A thin shell does the I/O: Service (the gRPC
// service) produces tasks and answers GetTask, Writer (the tailers' StatusSink) writes
// transitions to the compacted task status topic, kasync.tasks, keyed by task id, and
// Index keeps each node's Pebble copy of that topic.
//
// Where transitions are recorded:
//
//   - NEW: Submit, once the broker acknowledged the task (due time set; a task for
//     later waits on a rung, still NEW, until due).
//   - ENQUEUED: a tailer hands the workload to the scheduler (each attempt).
//   - PROCESSING and CLAIMED are not recorded: the scheduler, which knows when an
//     attempt starts, does not report starts to the tailer.
//   - RETRIABLE_FAILURE: the failed attempt's rung record is durable (with the next
//     due time and the error), or an ordered tailer retries in place.
//   - SUCCESS: an attempt succeeded. FATAL_FAILURE: the dead letter is durable.
//
// What a caller must do:
//
//  1. Create the ingest topics and the compacted status topic before serving; give
//     Service a durable producer (acks=all, idempotent) and the node's Router.
//  2. Run Index.Follow for as long as GetTask is served, and close the Index after.
//  3. Give the Writer to the tailers that read tracked topics (ingest topics, rungs, and
//     those with task_status: true) as their tailer.StatusSink.
//
// What the package guarantees:
//
//  1. Bad input is refused before anything is produced, with the field at fault in the
//     message: empty, unknown or not-submittable function, oversized task, reserved or
//     nameless header, negative or too-long delay, run_at beyond the limit (the limit
//     named), delay and run_at together (TestCheck, TestSubmitBadInput).
//  2. Submit answers a task id only after the broker acknowledged the task; the id is
//     the workload id the function sees (TestSubmitWithDelayRunsWhenDue,
//     TestGetTaskWalksToSuccess).
//  3. A task for later never runs before its due time and runs as attempt 1
//     (TestSubmitWithDelayRunsWhenDue).
//  4. A task's state only moves forward, by attempt then by state, and a final state
//     stays final, in any order of arrival (TestMergeOrderIndependent); GetTask shows
//     the states in order (TestGetTaskWalksToSuccess,
//     TestFailingSubmittedTaskShowsItsError).
//  5. Writing status never blocks a tailer: a transition that does not fit in the
//     producer's buffer is dropped and counted (Writer.Dropped), never waited for.
package tasks
