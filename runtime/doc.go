// Package runtime executes functions: the code users register to run once per
// event. It knows tasks and outcomes, not Kafka or offsets.
//
// A Registry maps names to Funcs. It runs them in-process as a
// scheduler.InlineExecutor (the dev mode, tests, embedding kasync in a Go
// program), and the Go SDK worker (Worker, in worker.go) serves the same registry
// to remote schedulers over gRPC, one stream to each address at the same time with its
// Capacity shared between them (worker_slots.go), running each task through
// Registry.RunTask. The Worker's own invariants are listed on its type.
//
// A function reports what should happen next through the error it returns, as
// river's jobs do:
//
//   - nil: success, the event is done;
//   - Fatal(err): no attempt will ever succeed; dead-letter it now;
//   - RetryAfter(d, err): retry, not before d;
//   - any other error: retry through the delay ladder.
//
// Classify is the one place that turns an error into a scheduler.Outcome.
//
// What a function must do:
//
//  1. Treat Task.Key, Payload and Headers as read-only and not keep them after it
//     returns.
//  2. Return soon after its ctx is done. If it does not, see guarantee 3.
//  3. Be safe to run more than once for one event (at least once): Task.ID is stable
//     across attempts and makes a good idempotency key.
//
// What the package guarantees:
//
//  1. Every attempt has exactly one outcome: the function's error classified by
//     Classify; Retriable(ReasonPanic) for a panic (logged with its stack) or a
//     runtime.Goexit; Retriable(ReasonTimeout) at the timeout;
//     Retriable(ReasonShutdown) when the caller's ctx is cancelled;
//     Fatal(ReasonUnknownFunction) for a name nobody registered.
//  2. A function's ctx carries the attempt's deadline and is cancelled when the
//     function returns, at the timeout, or when the caller's ctx is.
//  3. Execute and RunTask return by the timeout even if the function ignores its
//     ctx: the function runs on a goroutine of its own, which is then left to finish
//     on its own and its result dropped (logged at warn level). Behind a scheduler,
//     the Registry is a scheduler.InlineExecutor: ExecuteInline runs the function on
//     the scheduler worker's goroutine, without that goroutine or a timer per
//     attempt, and the scheduler answers at the timeout or Close and leaves the
//     function's goroutine in the same way (the scheduler's guarantee 18). Such a
//     goroutine is the one goroutine this package does not stop; it ends when the
//     function does.
//  4. Registration is safe concurrently with execution; lookups take no lock.
//  5. A Worker never runs more than Capacity tasks at once over all its schedulers,
//     and a scheduler is offered only free slots, never more unused credit than its
//     address's share (TestWorkerSharesCapacityBetweenSchedulers, TestSlotLedgerModel);
//     every address is served at once and each reconnects on its own
//     (TestWorkerServesEverySchedulerAndRejoinsOne). WithTLS's client certificate and
//     WithTokenFile's token are read again for each new connection
//     (TestWorkerReconnectsWithRotatedCredentials).
package runtime
