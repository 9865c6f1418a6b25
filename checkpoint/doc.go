// Package checkpoint keeps the durable progress of every partition kasync reads: for each
// (consumer group, topic, partition) a watermark — every offset below it is done — and the
// set of completed offsets above it, kept as ranges.
//
// The parts:
//
//   - RangeSet, a pure set of offsets stored as sorted, disjoint, non-adjacent ranges, with
//     Absorb to move a watermark over the done offsets that continue it.
//   - EncodeState/DecodeState and EncodeKey/DecodeKey, the versioned binary encodings of a
//     State and of a Key in the Pebble keyspace (keys sort by group, topic, partition).
//   - Resume, the hand-off rule between the local checkpoint and the offset committed to
//     the Kafka consumer group: the greater watermark wins.
//   - PebbleStore, the Store on Pebble: Save is an in-memory write, Flush commits every
//     saved state in one batch with one fsync.
//
// The package knows nothing of scheduling or of Kafka clients; the tailer drives it.
//
// # What a caller must do
//
//  1. Treat a State as durable only after a Flush that started after its Save returned nil.
//     Only then may the offsets it covers be acknowledged anywhere else (DESIGN.md
//     invariant 1, no loss, is kept by the caller not checkpointing an offset before its
//     outcome is durable, and by this package not reporting a checkpoint durable early).
//  2. Give Save a State it will not touch again: the store owns st.Done from then on.
//  3. On assignment of a partition, start from Resume(local, haveLocal, committed) and
//     skip the offsets in its Done set (DESIGN.md "Checkpoints").
//  4. Call Close once; it flushes. Every call after it fails with ErrClosed.
//
// # What the package guarantees
//
//  1. Never report durable what was not synced: Flush returns nil only after a Pebble
//     batch holding every state saved before the call was committed with pebble.Sync.
//     Proved by TestPebbleFailedSyncIsNotDurableAndRetried, TestPebbleFlushCoalesces and
//     TestPebbleCrashRecovery (simulated power cuts on vfs.NewCrashableMem).
//  2. A loaded state is never ahead of a saved one: Load returns the newest saved state,
//     or a durable one that was saved earlier; after a crash the recovered watermark is
//     one that was saved and is not behind the last one a Flush vouched for
//     (TestPebbleCrashRecovery).
//  3. At most one fsync per Flush, whatever the number of states, and concurrent Flush
//     calls coalesce: a caller whose saves the flush in progress already holds shares it;
//     the others share the next one (TestPebbleManyKeysOneFlush, TestPebbleFlushCoalesces).
//     With MinSyncInterval, syncs by Flush are at least that far apart however many
//     callers flush, so a node syncs at most once per checkpoint interval
//     (TestMinSyncIntervalBoundsFsyncs), plus one per FlushNow: a tailer calls it, and
//     Hurry to cut a waiting Flush short, only when CommitCount completions wait for a
//     sync, its bound on what a crash re-runs (TestFlushNowAndHurryDoNotWait).
//  4. A failed Flush loses nothing: its states stay saved, the error is returned, and the
//     next Flush writes them again. A key saved again during a flush keeps its newer value
//     (TestPebbleSaveDuringFlushKeepsNewerValue). Pebble cannot be trusted after a failed
//     WAL sync, so the store closes it and reopens it, replaying what reached the disk.
//  5. Resume never moves a watermark backwards: its result is at least the local
//     watermark and at least the committed offset, and it keeps every done offset above
//     it (TestResume).
//  6. RangeSet.Absorb never returns less than the watermark it was given, and leaves no
//     offset below the returned watermark in the set (TestRangeSetAgainstModel).
//  7. Decoding never panics and never allocates more than the input can describe; bytes
//     that are not a valid encoding yield an error wrapping ErrCorrupt (FuzzDecodeState,
//     FuzzDecodeKey).
//  8. The store's directory is created with mode 0700, and the directories created above
//     it are synced, so a power cut cannot lose the database with its parent.
//
// Pebble reports conditions it cannot recover from through its logger's Fatalf; its
// default exits the process. PebbleStore's logger turns a Fatalf into a panic that the
// store recovers around its own calls (so a failed commit becomes an error, never a
// false success); one raised on a Pebble background goroutine still ends the process.
package checkpoint
