// Package benchproto is what the processes of `kasync bench` say to each other: the
// latency histogram they fill and the JSON-lines events a measured child process writes
// on its standard output (ready, progress, result).
//
// It depends on the standard library only, so that peers built as separate modules
// (the Asynq peer in ../asynqpeer) can speak it without pulling kasync's dependencies.
//
// Invariants:
//   - A Histogram records any non-negative duration with a relative error under 1/64
//     (negative ones count as 0); Merge and JSON round trips lose no count.
//   - A child writes exactly one "result" event, last, and nothing but events on stdout.
package benchproto
