// Package rpc carries the scheduler over gRPC (the Scheduler service of
// proto/kasync/v1): the server side of Push and Work streams, the WorkerPool executor
// for functions served by SDK workers, and the Client a remote tailer uses.
//
// It owns the wire only: admission, queues and limits stay in package scheduler; a
// Push stream is a thin relay into scheduler.Scheduler.EnqueueBatch, and a Work stream
// is a worker's membership in a WorkerPool. It imports no Kafka client.
//
// Wiring, on a scheduler node:
//
//	pool, _ := rpc.NewPool(rpc.PoolOptions{Logger: logger}) // or rpc.NewWorkerPool(logger)
//	sched, _ := scheduler.New(scheduler.Config{Functions: []scheduler.Function{
//		{Name: "charge", Concurrency: 64, Timeout: 30 * time.Second, Executor: pool},
//	}})
//	srv, _ := rpc.NewServer(sched, pool, rpc.ServerOptions{})
//	g := grpc.NewServer(rpc.GRPCServerOptions()...)
//	srv.Register(g)
//	go g.Serve(lis)
//	// shutdown: g.Stop(); pool.Close(); sched.Close()
//
// and on a tailer node: rpc.NewClient(conn, rpc.ClientOptions{}) is a tailer.Scheduler.
//
// Secured (auth.go, creds.go, reload.go): tlsCfg, _ := rpc.ServerTLSConfig(cert, key, clientCA)
// (or rpc.NewServerTLS(...).Config(), reloadable);
// auth, _ := rpc.NewAuth(rpc.AuthConfig{ClientCerts: true, Tokens: ..., Grants: ...});
// rpc.NewServer(sched, pool, rpc.ServerOptions{Auth: auth}); grpc.NewServer(append(
// auth.ServerOptions(), grpc.Creds(credentials.NewTLS(tlsCfg)))...). Clients dial with
// rpc.ClientTLSConfig and grpc.WithPerRPCCredentials(rpc.BearerToken(token)).
//
// Invariants (each with the test that proves it):
//
//  1. Credit (Push). A Push stream never holds more unanswered workloads than its
//     credit: the server grants PushWindow after the hello and one unit per outcome it
//     sends; a tailer that sends more is cut off with RESOURCE_EXHAUSTED. So memory per
//     stream is bounded by PushWindow workloads and outcomes (DESIGN invariant 4).
//     (TestPushOverCreditIsResourceExhausted)
//  2. One outcome per workload per stream. Every workload received on a live Push stream
//     gets exactly one Outcome; a malformed one gets a fatal "invalid" outcome instead of
//     ending the stream (DESIGN invariant 6). Outcomes for a stream that ended are
//     dropped, and every goroutine of a stream ends with it.
//     (TestPushInvalidWorkloadGetsFatalOutcome, TestConformance, goleak in TestMain)
//  3. At least once across breaks, at most one result per token. The Client keeps every
//     unanswered workload; when its gRPC stream breaks it reconnects with jittered,
//     capped exponential backoff and re-sends them all. A token's result is delivered at
//     most once, and never after Close returns.
//     (TestClientResendsAfterStreamBreaks, TestClientSurvivesServerRestart)
//  4. Worker capacity. The WorkerPool sends a worker a task only within the credit the
//     worker granted (capacity - busy at hello, then WorkCredit, or a TaskResultBatch's
//     credit); credit that would make free slots plus held tasks exceed the capacity is a
//     protocol error. (TestPoolWaiterWakesOnCredit, TestWorkProtocolViolations,
//     TestWorkBatchesBothWays)
//  5. Timeouts start when a task is handed to its worker's stream (CLAIMED), not while
//     it waits for a worker. On timeout the worker gets CancelTask and the attempt is
//     retriable with reason "timeout"; the late result is dropped. Each re-dispatch
//     (9) gets a fresh timeout. All timeouts of a pool share one timer over a heap of
//     deadlines; no timer per task. (TestPoolTimeoutStartsWhenTaskIsSent,
//     TestPoolTimeoutCancelsTaskAndDropsLateResult, TestPoolTimeoutsModel)
//  6. Worker loss. When a Work stream ends for any reason (break, protocol error,
//     shutdown), every task the worker held is lost at once (and re-dispatched, 9);
//     other workers and streams are unaffected. A protocol error (result for a task the
//     worker does not hold, also a second result for one task in a batch, malformed
//     outcome kind, excess or zero credit, an empty message or result batch, a second
//     hello) ends only that stream, with INVALID_ARGUMENT; the items of a batch before
//     the bad one stand, as if sent one by one. Bytes that do not decode end it too,
//     with gRPC's own INTERNAL. (TestPoolLostWorkerTasksAreRedispatched,
//     TestWorkGarbageResultEndsOnlyThatWorker, TestWorkProtocolViolations,
//     TestWorkResultBatchViolations, FuzzTaskResultBatch)
//  7. A worker is admitted only if its hello is well formed (INVALID_ARGUMENT otherwise,
//     e.g. a capacity outside 1..MaxWorkerCapacity) and every function it offers is
//     configured on the scheduler (FAILED_PRECONDITION, naming the function and the
//     configured ones); workers already connected keep serving. (TestWorkRejectsBadHello)
//  8. Waiting for a worker does not poll: waiters sleep on a per-function channel that is
//     closed when a worker of that function joins, grants credit or stops being stalled,
//     or the pool closes. (TestPoolWaiterWakesOnCredit, TestPoolCloseReleasesWaiters)
//  9. Re-dispatch, attempt counted once. An attempt whose worker is lost (6, 10) did not
//     fail: Execute hands the same workload, with the same Attempt, to a live worker (or
//     the same one, reconnected), at most MaxRedispatch times; then it returns the
//     retriable worker-lost outcome, so a task that kills every worker it touches cannot
//     loop for ever. A worker-lost outcome a worker sends itself is not re-dispatched.
//     (TestPoolLostWorkerTasksAreRedispatched, TestPoolRedispatchIsBounded,
//     runtime's TestWorkerKilledWithTasksInFlightTheyRunElsewhere)
//  10. Heartbeats. A task that its worker has neither named in a Heartbeat nor answered
//     for HeartbeatTimeout (at most HeartbeatTimeout/20 later) is lost: the worker gets
//     CancelTask, its late result is dropped, and the worker is stalled (sent no task)
//     until it sends any message. The check is one timer per pool, stopped by Close;
//     no goroutine per task, no polling. The Work stream's response header
//     HeartbeatTimeoutHeader tells the worker the timeout.
//     (TestPoolHeartbeatsKeepTasksAlive, TestPoolHeartbeatTimeoutRedispatchesAndDropsLateResult,
//     runtime's TestWorkerHeartbeatsKeepLongTasks)
//  11. Batching without waiting. A worker that announced task_batches gets the tasks
//     queued for it as TaskBatch messages (at most 256 tasks or about 1 MiB each, order
//     kept, cancels in between); one that did not gets one Task per message. The sender
//     takes what is queued when it is free and never waits for more, so a lone task goes
//     out at once. (TestSendMsgsBatchesRunsOfTasks, TestWorkOldWorkerGetsOneTaskPerMessage)
//  12. Packed successes. A plain success (no reason, error or retry-after) travels as a
//     varint, not an Outcome or TaskResult message: in OutcomeBatch.succeeded to a
//     tailer whose PushHello set packed_successes (this package's client does), and in
//     TaskResultBatch.succeeded from a worker the WorkerWelcome offered it to (this
//     server does). Each means exactly the message it replaces; a peer that did not
//     ask gets whole messages. (TestPushPackedSuccessesNegotiated,
//     TestWorkPackedSuccesses, FuzzTaskResultBatch, runtime's
//     TestWorkerPacksSuccessesWhenOffered)
//  13. Credit in the outcome batch. To a tailer whose PushHello set credit_in_outcomes
//     (this package's client does), the credit a batch of outcomes frees travels in
//     that OutcomeBatch.credit instead of a Credit message after it; either way one
//     workload of credit per outcome. (TestPushCreditInOutcomesNegotiated)
//  14. WorkerPool is a scheduler.AsyncExecutor: Start keeps every promise of Execute
//     (timeout from the hand-over, re-dispatch bounded by MaxRedispatch, heartbeats,
//     cancellation by ctx, shutdown at Close) without a goroutine waiting per task.
//     Ends are collected under the pool's lock and delivered after it is released;
//     a done ctx ends the tasks started under it, found by its Done channel and one
//     context.AfterFunc per such ctx, stopped when its last task ends. The pool tests
//     of timeouts, re-dispatch and heartbeats run both ways. (TestPoolStartEndsTasksOfADoneCtx,
//     TestPoolStartWithoutCapacity, TestPoolStartTimeout, and the Start/ subtests)
//  15. Authentication before any handler. With ServerOptions.Auth and its interceptors
//     installed (Auth.ServerOptions), every call carries an Identity or ends
//     UNAUTHENTICATED before its handler runs: from the verified client certificate
//     (IdentityFromCert: subject CN, else first URI SAN, else first DNS SAN; the TLS
//     handshake itself refuses a certificate from another CA, or none, under
//     ServerTLSConfig with a client CA) and/or from an "authorization: Bearer" token,
//     which must name the same identity when both are configured. Tokens are compared
//     as SHA-256 digests in constant time, every known one each time, and never logged
//     or quoted in a status. An Auth whose interceptors are missing fails closed.
//     (TestMutualTLS, TestTokens, TestTokensAndCertificatesMustAgree,
//     TestAuthWithoutInterceptorsFailsClosed, TestTokenSet, TestBearerTokenParsing)
//  16. Authorization by a pure Policy. A Work hello is refused with PERMISSION_DENIED,
//     naming the function and the identity, unless the identity may serve every
//     function it offers; this is checked before the functions are compared with the
//     scheduler's, so a refused caller learns nothing of the configuration. A Push
//     stream needs push permission. A Policy without grants allows every authenticated
//     identity everything; with grants, an identity not listed may do nothing. Nil
//     ServerOptions.Auth: no checks at all. (TestPolicyGrants, TestMutualTLS, TestTokens)
//  17. BearerToken requires transport security: gRPC never sends it without TLS.
//     (TestBearerTokenNeedsTLS)
//  18. The codec speaks protobuf. GRPCServerOptions and DialOptions install a codec
//     (codec.go) that encodes and decodes kasync's messages with the code
//     protoc-gen-go-vtproto generates, under the name "proto": the bytes are the
//     protobuf wire format, so peers using protobuf-go (older kasync, grpcurl, other
//     languages) interoperate. It decodes every input protobuf-go accepts to equal known
//     fields and refuses strings that are not UTF-8 as protobuf-go does; it refuses a
//     known field with the wrong wire type (protobuf-go keeps it as unknown) and may
//     accept some malformed input protobuf-go refuses, such as a varint running past
//     the end of a packed field. Such input decodes to values a well-formed message
//     could carry, and every decoded value is checked where it is converted, so it
//     gives a peer nothing it could not send anyway. Encoding is ~4x faster than
//     protobuf-go and decoding ~1.3x (BenchmarkCodec).
//     (TestCodecMatchesProtobuf, TestCodecChecksEveryString, FuzzCodecUnmarshal)
//  19. Rotation without restart (reload.go). ServerTLS serves each handshake with the
//     certificate, key and client CAs loaded last, and Auth.SetTokens swaps the token
//     set; new connections and calls see the new ones, open streams keep what they
//     were authenticated with. A Reloader reloads when the files' bytes change (a
//     SHA-256 digest, not mtimes); a file that does not load, an empty or invalid token
//     list, or a missing file keeps the old configuration, never none, and is logged
//     once per content. Clients re-read theirs per connection: ClientTLSConfig's client
//     certificate at each handshake, BearerTokenFile's token for each call, keeping the
//     last one that loaded. (TestServerTLSReloadRotatesTheCertificate, TestAuthSetTokens,
//     TestClientCredentialsAreReadAgainForEachConnection, TestReloaderLooksAtContentNotTime)
package rpc
