// Package delaystreams owns what happens to a workload that did not succeed: the delay
// ladder (choosing rungs, producing to them, reading them until due) and the dead-letter
// topic.
//
// It holds the pure ladder and retry policy, the router, the readers the tailer uses for
// source and rung topics, rung and dead-letter topic management, the failure-storm guard
// and the kasync-* headers.
//
// # Ladder and policy
//
// Ladder (ladder.go) is the pure rung choice: no clock, no I/O. A record delayed by D
// carries its absolute due time (kasync-due, unix ms rounded up); at each step the
// caller passes left = due − now to Pick, which takes the largest rung ≤ left, the
// smallest rung when left is below it but above the tolerance, and no rung when
// left ≤ tolerance — the reader then holds the record in place until due. Because
// every step starts again from the absolute due time, lateness of a hop is absorbed
// by the next choice: a record never runs before its due time and, when each hop
// takes exactly its rung, less than (smallest rung − tolerance) after it; a hop late
// by up to L adds at most L in all (TestLadderProperties, TestLatenessDoesNotAccumulate).
// A delay D takes at most D/largest + Σ(⌈r[i+1]/r[i]⌉ − 1) + 1 hops (TestMaxHopsIsTight).
//
// RetryPolicy (policy.go) is a function's retry.max_attempts and retry.backoff (the
// last entry repeats), jittered by a caller-drawn r so a burst does not return as a
// burst; a function's RetryAfter is a floor that the ladder then rounds up to rungs.
// ClampAttempt and ClampDue bring forged or garbage kasync headers into sane bounds,
// so such a record still ends in success or the dead letter.
//
// # Router
//
// The Router (router.go) turns a failed attempt into a durable record. Decide is pure
// given a clock and a random source: a fatal outcome goes to the dead letter with its
// reason, a function with no retry policy with "unknown-function", an attempt at or past
// retry.max_attempts with "exhausted"; any other failure gets a due time of now plus the
// policy's jittered backoff (or a longer RetryAfter), capped at MaxDelay and rounded up to
// the millisecond, on the rung Ladder.Pick chooses — a delay within the tolerance still
// takes the smallest rung, because a retry always leaves the source partition. Route
// reports a failure durable only after acks=all from the idempotent producer, and never
// drops one. ParseMeta (meta.go) reads kasync headers back without trusting them:
// attempt, due time, first failure and error are clamped and each fix reported; a record
// with no usable function or origin gets ErrInvalidHeaders and goes to the dead letter
// with reason "invalid-headers" — it never stops a partition.
//
// # Readers
//
// SourceReader and RungReader (reader.go) implement tailer.Reader, so a delay reader is
// a tailer with its own consumer group, window and checkpoints. A source record runs at
// once as attempt 1; its failure goes to Router.Decide's rung or the dead letter. A rung
// record is ready when it has waited its rung since the broker appended it, or at its
// due time if sooner; the tailer holds it (and its partition) until then. Ready, it hops
// to the next rung while its due time is more than the tolerance away, is held until due
// when closer, and then runs as attempt kasync-attempt+1 with the ID of its origin.
// Records with unusable kasync headers are dead-lettered with reason invalid-headers.
//
// Clocks: the rung wait is measured from the record's timestamp, which LogAppendTime
// makes the broker's; the due time is the routing node's. A record runs early only by
// as much as the reading node's clock is ahead of the routing node's (a hop, of the
// broker's): with NTP, milliseconds. On the embedded broker, which does not apply
// LogAppendTime, the timestamp is the producing node's.
//
// # Failure-storm guard
//
// Guard (guard.go) keeps, per function, a sliding window of attempt outcomes (a ring of
// 10 time buckets: O(1) per outcome, fixed memory). When the window holds at least
// MinOutcomes outcomes and failures/outcomes ≥ Threshold (defaults 30s, 20, 0.9), the
// function's guard turns on: its source partitions stop feeding the ladder — a failure
// retries in place with backoff and pauses its partition — because copying a stream that
// almost all fails into delay topics is worse than stopping. Rung readers, whose
// partitions hold many functions' records, send such a failure back to a rung without
// using up an attempt. The first success while on (a probe) turns it off and clears the
// window. Each change is logged once and shown in kasync_storm_guard_active{function};
// Active is lock-free and does not allocate.
//
// # Metrics
//
// With RouterConfig.Registerer, the Router registers kasync_dead_letter_total{function,
// reason} and kasync_delay_lateness_seconds{rung} (rung as in its topic name: "30s").
// Produce counts a dead letter once the broker acknowledged it, as what was finally
// written (trimmed, or a rung record turned too-large), labelled with its kasync-function
// when that is a configured function (else "") and its kasync-reason when it is one of
// kasync's (else "other"), so forged headers cannot grow the label set. A RungReader
// observes now − kasync-due when it releases a record to run as the next attempt, on a
// series curried per rung at start (no lock, no allocation). Hops and held records are
// not observed. The guard's gauge is kasync_storm_guard_active{function}.
//
// # Topics
//
// EnsureTopics (topics.go) creates missing rung and dead-letter topics and checks
// existing ones at start. Rungs use LogAppendTime, so waits are measured on the broker's
// clock, not a producer's (kfake stores the setting but does not apply it: on the
// embedded broker rung records carry kasync's own produce time). Rung topic names come
// from config.Duration, so `kasync config check` validates exactly these names.
//
// Invariants:
//
//  1. A rung or dead-letter record is reported written only after the broker
//     acknowledged it (acks=all, idempotent producer), so a source offset is never
//     checkpointed past a record whose retry or dead letter could still be lost. A record
//     refused as too large is never left failing: a rung record becomes a too-large dead
//     letter, a dead letter is trimmed (TestTooLargeIsNeverStuck).
//  2. A dead-letter record keeps the source record's key, value and headers, and carries
//     kasync-function, kasync-attempt, kasync-origin, kasync-first-failure, kasync-error
//     (at most MaxErrorBytes) and kasync-reason (TestDeadLetterRecord).
//  3. kasync-* headers that arrive on a source record are dropped and replaced, never
//     duplicated or trusted.
//  4. Rung and dead-letter topics are checked at start; EnsureTopics refuses
//     (*TopicProblems, every problem at once with its fix) a topic that could delete a
//     waiting record — retention shorter than max(7 days, 10 × the rung), size-based
//     retention, compaction — or a rung that uses CreateTime.
//  5. A failure is routed durably or reported failed, never both and never neither; a
//     due time written is never earlier than the one decided nor more than MaxDelay
//     ahead (router_test.go).
//  6. Every value read from a kasync header is within bounds — attempt in [1, MaxAttempt],
//     due in (epoch, now+maxAhead], error ≤ MaxErrorBytes — whatever the input
//     (FuzzParseMeta), so a forged record still ends in success or the dead letter
//     (TestForgedRungHeaders).
//  7. A rung record never runs before its due time (by this node's clock) and never
//     waits on a rung longer than the time left, except the smallest rung
//     (TestRetriesWalkTheLadder).
//  8. The storm guard changes state at most once per probe or trip, and never per record
//     (TestGuardLogsOncePerChange); while it is on, nothing of that function is
//     dead-lettered for exhausting attempts it spent during the storm (TestFailureStorm).
//  9. kasync_dead_letter_total counts a dead letter exactly once, and only after the
//     broker acknowledged it (TestRouteLandsRecords, TestTooLargeIsNeverStuck,
//     TestRouteToMissingTopicFails); kasync_delay_lateness_seconds is observed once per
//     re-delivery and is never negative, because a rung record is released only when due
//     (TestRungLateness).
//  10. A task submitted for later (Router.Scheduled) waits on the rungs like a retry and
//     runs as attempt 1 when due, named after its first rung record's position, which
//     every hop writes as kasync-origin (TestScheduledTaskRunsAsAttemptOne).
package delaystreams
