// Package schedulertest is the conformance suite for implementations of the
// tailer.Scheduler interface: scheduler.Local (in-process) and the gRPC client in
// scheduler/rpc run the same cases, so a tailer behaves the same over either.
//
// An implementation's test calls Run with a Setup that builds a scheduler with the
// functions the suite asks for and returns an Opener wired to it:
//
//	func TestConformance(t *testing.T) {
//		schedulertest.Run(t, func(t *testing.T, fns []scheduler.Function) schedulertest.Opener {
//			s, err := scheduler.New(scheduler.Config{Functions: fns})
//			require.NoError(t, err)
//			t.Cleanup(func() { s.Close() })
//			return scheduler.NewLocal(s, schedulertest.Window)
//		})
//	}
//
// What a Setup must do:
//
//  1. Configure exactly the functions given, with their Concurrency, Timeout and
//     Executor unchanged.
//  2. Give each stream a credit window of exactly Window unanswered workloads.
//  3. Keep the default size limit, scheduler.DefaultMaxWorkloadBytes.
//  4. Stop everything it started in t.Cleanup. The suite closes its streams first and
//     makes every function return by then.
//
// What the suite checks, one subtest each:
//
//  1. Every pushed workload gets exactly one result carrying its token, with
//     several goroutines pushing at once.
//  2. Results may arrive in any order and still carry the right token.
//  3. Outcomes pass through unchanged: Kind, Reason, Err and RetryAfter (in whole
//     milliseconds).
//  4. An unknown function and a workload over the size limit are fatal, with
//     ReasonUnknownFunction and ReasonTooLarge.
//  5. Credit: with Window workloads unanswered, the next Push blocks until a result
//     frees room, and no more than Window workloads reach the functions.
//  6. Push on a closed stream fails with scheduler.ErrStreamClosed; Close unblocks a
//     Push waiting for credit, which fails the same way.
//  7. A Push waiting for credit returns the context's error when its ctx is done.
//  8. deliver is never called after Close has returned.
//  9. A function never runs more than its Concurrency attempts at once.
//  10. Two streams of one Opener each get only their own results.
package schedulertest
