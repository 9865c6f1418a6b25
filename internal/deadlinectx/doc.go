// Package deadlinectx provides a context.Context with a deadline that costs nothing
// until somebody waits on it.
//
// context.WithDeadline arms a timer and registers with its parent for every attempt
// it guards, and stops both when the attempt ends: at hundreds of thousands of short
// attempts a second that is a large share of the work, for functions that mostly
// never look at their ctx. A deadlinectx.Context answers Deadline, Err and Value
// from its fields and its parent; only the first Done (or a child context derived
// from it, which calls Done) builds the real context.WithDeadline underneath.
// Whoever created it still enforces the deadline by other means (the scheduler's
// worker watchdog): the context only reports it.
//
// What a caller must do:
//
//  1. Call Release when the attempt ends. After it the context is done with the
//     error it reported before, or else context.Canceled: Release reads no clock, so
//     call Err before it to have DeadlineExceeded for a deadline that passed.
//
// What the package guarantees:
//
//  1. It behaves as context.WithDeadline(parent, deadline) would, with Release as its
//     cancel func (but for the clock, point 1 above): Deadline is the earlier of the two deadlines; Err is nil until the
//     parent is done, the deadline has passed or Release was called, then
//     context.Canceled or context.DeadlineExceeded for good; Done closes then;
//     Value and context.Cause see through to the parent; contexts derived from it
//     are cancelled with it, without a goroutine of their own (TestLikeWithDeadline).
//  2. Until the first Done it allocates nothing more and arms no timer; Release
//     costs two atomic loads and a CAS, Err a clock read and the parent's Err
//     (BenchmarkUnused).
package deadlinectx
