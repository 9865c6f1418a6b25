// Package crashtest holds kasync's process-level acceptance tests: crash safety (issue
// 3) and bounded memory under a backlog (issue 4). It has no code of its own: everything
// is in its _test.go files, and it imports nothing into the binary.
//
// The test builds the real `kasync` binary once (TestMain), starts `kasync broker` with a
// data directory as a child process, and runs `kasync run` as another child process
// against it, with the function served by a Go SDK worker inside the test process. So the
// record of every execution lives outside the process that is killed. It SIGKILLs the node
// at random moments spread over a run of 100,000 events (some of which fail once, always
// or fatally), restarts it with the same data directory and gRPC address each time, and
// lets the last one finish.
//
// What the test proves, each with an assertion (DESIGN.md invariants 1 and 2):
//
//  1. No loss. Every event id has a successful execution or a dead-letter record after
//     all the crashes; the dead-lettered ids are exactly those planned to fail for good,
//     with the planned kasync-reason (fatal or exhausted), and none of them also succeeded.
//  2. Bounded duplicates. The executions beyond those each event's plan needs are at
//     most, per crash, the work a node can have in flight or completed above its last
//     durable checkpoint: the source tailer's max_in_flight, every rung reader's
//     max_in_flight and checkpoint.max_pending. The duplicates are attributed to the crash
//     after which they ran, and logged per crash.
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
// Both tests are skipped with -short. KASYNC_LONG=1 runs more kills.
package crashtest
