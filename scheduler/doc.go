// Package scheduler admits workloads, queues them per function and dispatches
// them to executors, returning one outcome per workload. It is source-agnostic: it
// knows workloads and outcomes, not Kafka, offsets or checkpoints, and imports none
// of franz-go, tailer, checkpoint or runtime.
//
// The parts:
//
//   - Workload, Outcome, Stream, Executor (workload.go) are the shared contract
//     between sources, the scheduler and runtimes.
//   - queue is the pure order of one function's waiting workloads (per-priority
//     FIFO rings, with aging), tested without goroutines.
//   - aimd (adaptive.go) is the pure core of a function's adaptive concurrency
//     limit and Retry-After hold; fair (fair.go) the pure core of tenant sharing
//     (weighted fair queueing of slots on slot time, quotas). Both take time as an
//     argument and are tested without goroutines or a clock.
//   - Scheduler is the shell around the queues: admission, a lazily grown pool of
//     at most Concurrency worker goroutines per function, the arbiter that hands
//     out slots of MaxConcurrency and tenant quotas (arbiter.go), the metrics
//     collector (metrics.go), shutdown.
//   - Local adapts a Scheduler to tailer.Scheduler in-process: push streams with
//     credit flow control and batched delivery of results. The gRPC client in
//     scheduler/rpc is the same seam over the network; both pass the conformance
//     suite in scheduler/schedulertest.
//
// What a caller must do:
//
//  1. Give every Function a unique Name, Concurrency >= 1, Timeout > 0 and an
//     Executor whose Execute returns once its ctx is done (Close waits for it); a
//     Tenant that Config.Tenants names (or "" for "default"). An InlineExecutor's
//     ExecuteInline need not return then (guarantee 18).
//  2. Not modify a workload between Enqueue (or Push) and its outcome.
//  3. Keep done callbacks and deliver funcs short: they run on the goroutines that
//     dispatch the next attempts and deliver the next results.
//  4. Close a Local stream from outside its deliver func.
//
// What the package guarantees:
//
//  1. Exactly one outcome per enqueued workload: done is called once, with the
//     attempt's outcome, a refusal, or Retriable(ReasonShutdown).
//  2. Bad input never becomes an error or a panic: a nil or malformed workload is
//     Fatal(ReasonInvalid), an unconfigured function Fatal(ReasonUnknownFunction),
//     a workload over MaxWorkloadBytes Fatal(ReasonTooLarge), each with an Err that
//     names the problem (DESIGN invariant 6: the source dead-letters it and moves on).
//  3. At most Concurrency attempts of a function run at once, and a function never
//     has more worker goroutines than its Concurrency, so the scheduler runs at most
//     sum(Concurrency) + 1 goroutines, plus one per open Local stream and one per
//     Retry-After hold timer firing (TestWorkersBounded). Not counted: a goroutine
//     an InlineExecutor's function still holds after its attempt was taken over
//     (guarantee 18); it is no longer a worker and ends when the function returns.
//     A function whose attempts are started asynchronously has one worker
//     (guarantee 19).
//  4. A function's waiting workloads start highest Priority first, in admission order
//     within a priority; every tenth start takes the oldest waiting workload of any
//     priority, so a flood of high priorities never starves a low one
//     (TestQueueModel, TestQueueLowPriorityIsNotStarved, TestPrioritiesUnderContention).
//  5. A panicking executor or an outcome of no known Kind is recorded as a
//     retriable outcome (ReasonPanic, ReasonError) and logged at error level; the
//     worker lives on.
//  6. While the scheduler is open, done is never called on Enqueue's caller's
//     stack; after Close has begun it is, as no scheduler goroutine is left.
//  7. Close stops dispatching, answers every queued workload with
//     Retriable(ReasonShutdown), cancels running attempts' ctx, and returns only
//     when every done has been called and every goroutine has exited.
//  8. Bounded memory (DESIGN invariant 4): a Local stream has at most its window of
//     workloads queued, running or with a result awaiting delivery; a queue's memory
//     shrinks back after a burst.
//  9. A Local stream calls deliver from one goroutine, never after Close returns,
//     and with a slice the receiver may keep.
//  10. A function with a Rate starts at most Rate attempts per second (a token
//     bucket holding a tenth of a second's starts), over all its workers; a wait for
//     a token ends with Close (TestRateLimit).
//  11. Adaptive limit (downstream protection): a function runs at most its adaptive
//     limit of attempts at once, in [Adaptive.Min, Concurrency], starting at
//     Concurrency. An outcome with ReasonOverloaded or ReasonTimeout halves it, once
//     per overload event: outcomes of attempts started before the last decrease do
//     not halve it again; each success grows it by 1/limit, up to Concurrency; other
//     outcomes leave it alone (TestAIMDSignals, TestAIMDOncePerRoundTrip,
//     TestAIMDAdditiveIncrease, TestAIMDModel, TestAdaptiveLimitCapsRunning,
//     TestAdaptiveLimitDownstream429). It reacts to an outcome just after done returns.
//  12. An overloaded outcome with a RetryAfter holds the function's new starts until
//     then, at most MaxHold (30 s); the outcome keeps its RetryAfter for the source's
//     retry; Close stops the hold's timer (TestAIMDHold, TestAdaptiveHoldEndsAtClose,
//     TestAdaptiveLimitDownstream429). Adaptive.Disabled turns 11 and 12 off
//     (TestAdaptiveDisabled).
//  13. With Registerer set, kasync_concurrency_limit, kasync_inflight and
//     kasync_queued (gauges), kasync_workloads_total{outcome: success, retriable,
//     fatal} and kasync_workload_duration_seconds (a histogram, 100µs doubling to
//     ~105s), each by function, are read from the live state at scrape time; Close
//     unregisters them (TestMetrics, TestDurationBucket).
//  14. Tenants: at most MaxConcurrency attempts run at once over all functions, and
//     at most a tenant's Concurrency over its functions; at most a tenant's Rate
//     starts per second over its functions (TestMaxConcurrency,
//     TestTenantConcurrencyQuota, TestTenantRate). A worker holds a slot only from
//     just before it pops to the end of its attempt (rate tokens are waited for
//     first), so priority order within a function is kept (TestTenantPrioritiesKept).
//  15. Tenants waiting for slots share them by weight on slot time, whatever their
//     attempts' durations; quotas are never exceeded; a tenant that asked for nothing
//     banks no credit (TestFairShareByWeight, TestFairModel,
//     TestFairIdleTenantBanksNoCredit). One tenant's flood or failure storm leaves
//     another's p99 latency within 2x its level alone; while a flood holds every
//     slot, another tenant waits for at most one of its attempts to end
//     (TestTenantIsolation).
//  16. Waits for slots end with Close, which keeps guarantee 7 (TestCloseEndsSlotWaits).
//     Without Tenants quotas or MaxConcurrency there is no arbiter and no wait
//     before a start (TestNoTenantsUnchanged).
//  17. EnqueueBatch keeps every guarantee of Enqueue for each of its workloads; it
//     takes a function's lock once per run of its workloads and wakes one worker,
//     which wakes the next as it starts, so a burst still reaches Concurrency
//     attempts at once (TestBurstStartsUpToConcurrency). Local streams reuse their
//     tickets without mixing up tokens and outcomes (TestLocalTicketsReused).
//  18. An InlineExecutor's attempts run on the worker's own goroutine, and the
//     scheduler keeps Executor's promises for them: an attempt is answered at its
//     timeout, or at Close, even if the function has not returned, and exactly once
//     (a watchdog timer per worker, re-armed lazily, and a shutdown watch race the
//     function by a CAS on a generation-tagged state); the winner gives the worker's
//     place to a new goroutine. A panic is retriable; a runtime.Goexit is answered and
//     replaced too (TestInlineTimeoutReplacesTheWorker, TestInlineShortAttemptsNeverTimeOut,
//     TestInlineCloseDoesNotWaitForAStuckFunction, TestInlineGoexitReplacesTheWorker,
//     TestInlinePanicIsRetriable, TestInlineExactlyOnceUnderTakeovers,
//     TestLocalConformanceInline).
//  19. An AsyncExecutor's attempts (of a function with no rate limit, tenant rate
//     or slot to wait for; gated functions call Execute) are handed over by one
//     worker per function, which starts them up to the adaptive limit and does not
//     wait for them; each ends where its outcome arrives, exactly once (a Start that
//     panics is retriable, unless it ended the attempt first), and Close returns only
//     after every end (TestAsyncConcurrencyCap, TestAsyncCloseEndsAttemptsInFlight,
//     TestAsyncStartPanics, TestAsyncOnlyForUngatedFunctions,
//     TestLocalConformanceAsync).
package scheduler
