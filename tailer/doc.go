// Package tailer reads Kafka partitions in batches as a consumer group member and pushes
// their records to a scheduler as workloads. It owns the in-flight window of each
// partition, its watermark and checkpoint, pausing and resuming fetches, holding records
// until their time, and the hand-off of partitions on a rebalance. It knows nothing of
// functions, workers or HTTP: the scheduler is behind the Scheduler interface declared
// here, and what a record means is behind the Reader interface — delaystreams implements
// one for source topics and one for delay rungs, so a delay reader is a tailer too.
//
// What a caller must do:
//
//  1. Give Config a Scheduler, a checkpoint.Store, a Reader and a Producer (and a Guard
//     to have the failure-storm guard), and call Run.
//  2. Cancel Run's context to stop; Run returns after the drain below.
//  3. To record task states (submitted tasks, task_status), give Config.Status a
//     StatusSink: it is called when a workload is pushed, succeeds, or has its failure
//     made durable on a rung or in the dead letter, never for a hop, and with a nil sink
//     nothing is called (internal/node TestGetTaskWalksToSuccess,
//     TestFailingSubmittedTaskShowsItsError).
//
// For each record read, the Reader returns a Step: run a workload (ActionRun), make a
// record durable (ActionProduce: a rung or the dead letter), or hold the record and
// every later one of its partition until a time (ActionWait: the partition pauses and
// one timer for all partitions wakes it; nothing polls). For each failed attempt it
// returns where the failure goes: ActionProduce, or, while the function's storm guard is
// on, ActionRetry — the record retries in place with backoff and its partition pauses,
// on purpose. A tailer keeping key or partition order gets ActionRetry with a due time
// for every retriable failure: the next attempt runs in place then, and only the
// record's key waits for it.
//
// What the package guarantees (DESIGN.md invariants, with the test that proves each):
//
//  1. No loss. A partition's checkpoint (Pebble, then the group commit) only passes an
//     offset whose outcome is durable: success, or a rung or dead-letter record the
//     broker acknowledged (a produce that fails is retried, never dropped). The watermark
//     is the lowest offset not done (window.go; TestWindowModel, TestCheckpointStateModel,
//     TestEndToEndInProcess, TestDeadLetterFailureHoldsCheckpoint).
//  2. Bounded duplicates. A restarted tailer starts from the greater of its Pebble
//     checkpoint and the group commit, and skips offsets the checkpoint records as done
//     above the watermark (TestRestartResumesFromCheckpoint). What it runs again is what
//     was read and not durably done, and polling keeps that below MaxInFlight +
//     CommitCount: a completion counts against CommitCount until a checkpoint write that
//     holds it has synced (TestUndurableWorkIsBounded). So a crash re-runs at most
//     MaxInFlight + CommitCount records, however fast they complete; a re-run attempt
//     that fails again costs one more attempt on the next rung. The write CommitCount
//     asks for does not wait for a checkpoint.UrgentFlusher's next sync slot, and
//     hurries a periodic write that does, so the bound costs a sync, not the slot's wait
//     (TestUndurableBoundDoesNotWaitForTheSyncSlot).
//  3. Bounded memory. At most MaxInFlight records are read and not done — running,
//     being produced, held or waiting for an in-place retry alike; polling asks for no
//     more than the room left, and stops at the bound. A partition that reaches
//     PartitionMaxInFlight is paused until room frees (TestInFlightIsBounded).
//  4. Fenced ownership. Each assignment of a partition is a new partition value; on
//     revocation it is fenced under commitMu before it is released, and a result for a
//     fenced partition changes nothing (TestFencedResultDoesNotMoveCheckpoint).
//  5. Bad input never stops a partition: a workload the scheduler rejects (unknown
//     function, too large) comes back fatal and goes where the Reader sends fatal
//     outcomes, the dead-letter topic (TestFailuresAndBadInput, TestUnknownFunction).
//  6. Graceful release. On revocation or stop, dispatch for the partition stops, work in
//     flight (running or being produced) gets up to RevokeTimeout to finish, and the
//     checkpoint is committed before the partition is given up. Held records and those
//     waiting for an in-place retry are not waited for: they stay below the checkpoint
//     and the next owner reads them again (TestHeldRecordsGoToTheNextOwner). A periodic
//     checkpoint write may hold a release back by at most RevokeTimeout — the one in
//     progress; none starts while a release waits — and a stop cancels it, so a
//     coordinator that refuses every group commit does not stall a stop or a
//     revocation: a release takes at most three RevokeTimeouts (work in flight, that
//     write, its own commit). Then the next owner resumes from the last commit the
//     broker accepted, and re-runs at most what the old owner had read of the moved
//     partitions above it (TestBrokerFaultsStopWhileCommitsFail,
//     TestRevokeWhileCommitsFail).
//  7. Order of holds. Records of a partition behind a held record wait with it and are
//     asked about again in offset order, so a rung partition, ordered by append time,
//     only ever waits on its head (TestHeldRecordsGoToTheNextOwner, TestForgedRungHeaders).
//  8. Ordering modes. With OrderKey, records with the same non-null key run one at a
//     time in offset order: a record whose key is busy (an earlier record of it runs,
//     retries in place or has its failure made durable) waits in the window behind it,
//     and is pushed once that one is done; other keys flow meanwhile. OrderPartition is
//     the same with one key per partition. Waiting records count in the window, so the
//     window bounds them and a partition whose window fills pauses (invariant 3); they
//     are parked, so a revocation does not wait for them (TestKeyOrderProperty,
//     TestKeyOrderOtherKeysFlow, TestPartitionOrder, TestKeyOrderRevokeDropsBlocked).
//  9. Lag. Lag reports, per owned partition, the records not done (the log end from
//     the latest fetch with records, minus the watermark) and the age of the oldest
//     record read and not done, by its timestamp, which the window keeps with each
//     record (TestLag, TestWindowModel). While a partition is paused nothing is
//     fetched, so records appended meanwhile count only once it resumes.
//  10. Offsets that vanished never skip to the end. A partition whose resume offset
//     (checkpoint or group commit) is below its log start lost records to retention
//     before they ran: the tailer logs an error with the count, adds it to
//     Stats.LostByRetention, and by Config.OffsetsLost resumes at the log start
//     (default) or stops, reading nothing of it (Run returns ErrOffsetsLost). Start
//     applies only to a group with no checkpoint; an out-of-range answer from the
//     broker resumes at the log start too (TestOffsetsLostResumeAtLogStart,
//     TestOffsetsLostFailStops).
//  11. Broker faults. Invariant 1 holds, and processing recovers by itself once the
//     faults stop, while the broker fails produce requests to the rungs and the dead
//     letter (retriable and refused), fetches or offset commits, or drops
//     connections: no sampled group commit or Pebble checkpoint passed a record
//     before its outcome was durable, and afterwards every record succeeds or is in
//     the dead letter and every group commits its end
//     (TestBrokerFaultsProduceToRungsAndDeadLetter, TestBrokerFaultsFetch,
//     TestBrokerFaultsOffsetCommit, TestBrokerFaultsDroppedConnections; make
//     test/faults-long runs them at a larger size).
//  12. Logs. At info, one line per assignment (partitions assigned, with where each
//     resumes) and per release (partitions released), and one at start and stop;
//     nothing per record. Dead letters and errors that can repeat per poll, record or
//     attempt are logged at most once per kind every 30s with a count of the others
//     (internal/logrepeat; internal/node TestLogsDoNotGrowWithRecords).
//  13. No commit from a member that lost the partition. Every group commit carries the
//     member's id and generation, and the coordinator refuses one whose generation is
//     gone (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, ...): a zombie
//     whose heartbeats no longer reach the group, whose commit lands after the new
//     owner's, cannot take the checkpoint back. The tailer counts such a refusal
//     (Stats.CommitsRefused), logs it once until a commit succeeds again, keeps going on
//     Pebble, and never sends the partition in a later generation: franz-go releases it
//     (fenced, invariant 4) before it rejoins (TestStaleCommitRefusedByBroker).
package tailer
