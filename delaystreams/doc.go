// Package delaystreams owns what happens to a workload that did not succeed: the delay
// ladder (choosing rungs, producing to them, reading them until due) and the dead-letter
// topic.
//
// Today it holds the pure ladder and retry policy, the router, rung and dead-letter topic
// management, the dead-letter writer and the kasync-* headers. The delay reader and the
// tailer's use of the router come next (see the README's status list); until then the
// tailer retries retriable failures in place and writes dead letters with
// DeadLetterWriter.
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
//  1. A letter is reported written only after the broker acknowledged it (acks=all,
//     idempotent producer), so a source offset is never checkpointed past a record whose
//     dead letter could still be lost.
//  2. A dead-letter record keeps the source record's key, value and headers, and carries
//     kasync-function, kasync-attempt, kasync-origin, kasync-first-failure, kasync-error
//     (at most MaxErrorBytes) and kasync-reason. The Router and DeadLetterWriter build it
//     with the same code (TestDeadLetterSameShape).
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
//     (FuzzParseMeta).
package delaystreams
