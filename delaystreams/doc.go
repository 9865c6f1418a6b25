// Package delaystreams owns what happens to a workload that did not succeed: the delay
// ladder (choosing rungs, producing to them, reading them until due) and the dead-letter
// topic.
//
// Today it holds the dead-letter writer and the kasync-* header names; the ladder lands
// with the failure-semantics work (see the README's status list). Until then the tailer
// retries retriable failures in place.
//
// Invariants:
//
//  1. A letter is reported written only after the broker acknowledged it (acks=all,
//     idempotent producer), so a source offset is never checkpointed past a record whose
//     dead letter could still be lost.
//  2. A dead-letter record keeps the source record's key, value and headers, and carries
//     kasync-function, kasync-attempt, kasync-origin, kasync-first-failure, kasync-error
//     (at most MaxErrorBytes) and kasync-reason.
//  3. kasync-* headers that arrive on a source record are dropped and replaced, never
//     duplicated or trusted.
package delaystreams
