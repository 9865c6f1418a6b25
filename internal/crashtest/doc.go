// Package crashtest holds kasync's process-level acceptance tests: crash safety (issue
// 3), bounded memory under a backlog (issue 4) and churn among several nodes (issue 7).
// It has no code of its own: everything is in its _test.go files (the child processes,
// broker, workers and event fates they share are in harness_test.go and fate_test.go),
// and it imports nothing into the binary.
//
// TestCrashSafety (crash_test.go) builds the real `kasync` binary once (TestMain),
// starts `kasync broker` with a data directory as a child process, and runs `kasync run`
// as another child process against it, with the function served by a Go SDK worker
// inside the test process. So the record of every execution lives outside the process
// that is killed. It SIGKILLs the node at random moments spread over a run of 100,000
// events (some of which fail once, always or fatally), restarts it with the same data
// directory and gRPC address each time, and lets the last one finish.
//
// What the test proves, each with an assertion (DESIGN.md invariants 1 and 2):
//
//  1. No loss. Every event id has a successful execution or a dead-letter record after
//     all the crashes; the dead-lettered ids are exactly those planned to fail for good,
//     with the planned kasync-reason (fatal or exhausted), and none of them also succeeded.
//  2. Bounded duplicates. The executions beyond those each event's plan needs are at
//     most, per crash, the work a node can have in flight or completed above its last
//     durable checkpoint: for the source tailer and every rung reader, its max_in_flight
//     plus checkpoint.max_pending (a tailer reads nothing more while that many
//     completions wait for a sync) — plus one per duplicate attempt that failed and
//     made a second rung record. The duplicates are attributed to the crash after which
//     they ran, and logged per crash.
//  3. A clean stop after the crashes. SIGTERM makes the last node exit 0, and the source
//     group's committed offsets reach the log end.
//
// TestBacklogMemoryIsFlat (memory_test.go) is the flow-control proof of issue 4, on the
// same kind of child processes: `kasync run` works through a backlog of 10 KiB records
// with a slow function in an SDK worker here, once with 20,000 records and once with
// 100,000. It asserts that the node's peak resident memory does not grow with the
// backlog (the window, the concurrency and the worker's capacity bound what is in
// flight) and that the function never runs more than its concurrency at once, and logs
// the figures.
//
// TestChurn (churn_test.go) is issue 7's churn test, on the same kind of child
// processes: three `kasync run` nodes (all roles, so the source tailer's group and every
// rung's have a member in each node) share a 12-partition topic and the rungs against
// one `kasync broker`, while events are produced over the whole run (15,000; 100,000
// with KASYNC_LONG_CHURN=1, `make test/churn-long`). Every few seconds a random node is
// stopped — SIGTERM and SIGKILL in turn — and restarted with its data directory; after
// each SIGTERM and every other SIGKILL the restart waits until the other nodes own its
// partitions, so partitions move to other nodes and back. Each node incarnation has an
// SDK worker of its own here, so every execution is recorded with the process that ran
// it. What it proves (DESIGN.md invariants 1, 2 and 5, with several nodes):
//
//  4. No loss under churn: as guarantee 1, for every event.
//  5. Bounded duplicates, by cause. Of the runs of one attempt of one event, the first
//     is planned; a later one (or an attempt beyond the plan) is a duplicate. One that
//     ran after a duplicate of the attempt before (which made one more rung record) is
//     charged where that one is; any other re-ran work whose result the incarnation of
//     the run before lost, and is charged to that incarnation's stop if it came first,
//     else to a hand-over between live nodes (TestAttribute checks the charging on
//     histories seen in runs). Each SIGKILL costs at most guarantee 2's bound; a SIGTERM
//     costs 0 (the node drains and commits before it leaves its groups); a hand-over
//     between live nodes (a graceful revocation) costs 0.
//  6. Checkpoints never move backwards. The committed offsets of every group are
//     sampled every 5ms throughout, and each partition's only ever grows; a source
//     commit never passes a record whose first attempt had not started when it was
//     sampled. A commit accepted from a node that lost the partition would take it back
//     wherever that node was behind the new owner, so this is also the evidence that no
//     such commit is accepted (invariant 5). Group commits the broker refused as fencing (ILLEGAL_GENERATION,
//     UNKNOWN_MEMBER_ID) are counted in the node logs and reported, not failed on.
//  7. Recovery. The figures give, after the last restart, when the node was a member
//     of its groups again and how long after the last event every event was done and
//     every group had committed its topic's end.
//
// All these tests are skipped with -short. KASYNC_LONG=1 runs more kills;
// KASYNC_LONG_CHURN=1 the long churn.
package crashtest
