// Package crashtest holds kasync's crash-safety acceptance test (issue 3). It has no
// code of its own: everything is in its _test.go files, and it imports nothing into the
// binary.
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
// The test is skipped with -short. KASYNC_LONG=1 runs more kills.
package crashtest
