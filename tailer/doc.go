// Package tailer reads Kafka partitions in batches as a consumer group member and pushes
// every record to a scheduler as a workload. It owns the in-flight window of each
// partition, its watermark and checkpoint, pausing and resuming fetches, and the hand-off
// of partitions on a rebalance. It knows nothing of functions, workers or HTTP: the
// scheduler is behind the Scheduler interface declared here.
//
// What a caller must do:
//
//  1. Give Config a Scheduler, a checkpoint.Store and a DeadLetterer, and call Run.
//  2. Cancel Run's context to stop; Run returns after the drain below.
//
// What the package guarantees (DESIGN.md invariants, with the test that proves each):
//
//  1. No loss. A partition's checkpoint (Pebble, then the group commit) only passes an
//     offset whose outcome is durable: success, or a dead letter the broker acknowledged.
//     The watermark is the lowest offset not done (window.go; TestWindowModel,
//     TestEndToEndInProcess).
//  2. Bounded duplicates. A restarted tailer starts from the greater of its Pebble
//     checkpoint and the group commit, and skips offsets the checkpoint records as done
//     above the watermark (TestRestartResumesFromCheckpoint).
//  3. Bounded memory. At most MaxInFlight records are read and not done; polling asks
//     for no more than the room left, and stops at the bound. A partition that reaches
//     PartitionMaxInFlight is paused until room frees (TestInFlightIsBounded).
//  4. Fenced ownership. Each assignment of a partition is a new partition value; on
//     revocation it is fenced under commitMu before it is released, and a result for a
//     fenced partition changes nothing (TestFencedResultDoesNotMoveCheckpoint).
//  5. Bad input never stops a partition: a workload the scheduler rejects (unknown
//     function, too large) comes back fatal and goes to the dead-letter topic like any
//     other fatal outcome.
//  6. Graceful release. On revocation or stop, dispatch for the partition stops, work in
//     flight gets up to RevokeTimeout to finish, and the checkpoint is committed before
//     the partition is given up.
//
// Until the delay ladder lands, a retriable failure is retried in place after Backoff,
// up to MaxAttempts, then dead-lettered with reason "exhausted".
package tailer
