// Package node wires the parts of kasync into one running node from a configuration:
// the checkpoint store, the scheduler and its gRPC API, the tailers, the dead-letter
// writer and the HTTP endpoints (health, metrics, the dashboard). It holds no
// business logic; cmd/kasync (through internal/cli) only parses flags and calls Start.
//
// Guarantees:
//
//  1. Roles: a node runs the tailer role, the scheduler role or both. With both, tailers
//     push to the scheduler in-process (scheduler.Local); with the tailer role alone they
//     push over gRPC to SchedulerAddr. The same code path serves both.
//  2. Shutdown order: when the context ends, tailers drain first (their in-flight work
//     needs the scheduler and workers) and commit; only then do the scheduler, the
//     servers, the producer and the checkpoint store stop.
//  3. Configuration this version cannot honour yet (rate limits, HTTP functions, key and
//     partition ordering) is refused at Start with the field named, never ignored.
//  4. Start either returns a running node or releases everything it acquired.
//  5. Health: /healthz answers 200 while the process serves. /readyz answers 200 only
//     when nothing keeps the node from its work, else 503 with one line per problem:
//     checkpoints not durable (the store closed, or its latest flush failed), no broker
//     answering a metadata request within 2s, a tailer not (yet, or no longer) a member
//     of its consumer group, a remote scheduler connection failing. A scheduler-only
//     node needs no Kafka and is ready while it serves (TestReadyzFollowsTheBroker,
//     TestReadyzOfASchedulerOnlyNode).
//  6. /metrics serves the scheduler's metrics (kasync_workloads_total,
//     kasync_workload_duration_seconds, kasync_inflight, ...), the storm guard's, the
//     source tailers' lag (kasync_tailer_lag_records and kasync_tailer_lag_seconds, by
//     tailer and partition) and the Go runtime's (TestMetricsAfterARunWithFailures);
//     the delay router's kasync_dead_letter_total{function,reason} and
//     kasync_delay_lateness_seconds{rung}; kasync_checkpoint_commits_total{store="pebble"},
//     the store's synced commits read at scrape time; and, with the delay role,
//     kasync_delay_records{rung}: each rung topic's end offsets minus its readers' group
//     commits (the log start where none), asked of the broker at scrape time within 2s and
//     left out when it does not answer, because a paused rung partition's end is not
//     fetched. Every Kafka client the node creates exports franz-go's metrics through
//     kprom as kasync_kafka_*{client}: client="producer", "tailer/<name>" and
//     "delay/<rung>" (TestOperatingMetrics). kasync_tasks{function,state} counts the
//     ATF states that have a count now: NEW (unread in owned source partitions),
//     ENQUEUED and PROCESSING (TestTaskStatesGauge); kasync_tailer_records_lost_total
//     counts records retention removed before they ran.
//  7. Status (status.go) is a snapshot of the node from its live state, never from
//     /metrics: the scheduler's stats, the storm guard, the tailers' lag and in-flight
//     counts, the router's dead-letter counters; and from the broker, at once and
//     within 2s, readiness, each rung's depth (the code of kasync_delay_records) and
//     the latest dead letters (internal/dlq's reader, a direct consumer). From the
//     offsets listed for the depth, no second listing, Status reads the head of each
//     rung partition with records waiting (internal/status's Peek, a direct consumer,
//     within the same 2s) for the rung's oldest due time, the earliest kasync-due of
//     the heads, and its lateness, Taken minus that when past, else 0; both are nil
//     when nothing waits (TestStatusShowsRungHeads). What the broker does not answer
//     in time, or a head without kasync-due, is named in Problems, not reported as
//     zero (TestStatusAfterARunWithFailures, TestStatusShowsRungHeads). The dashboard (internal/dashboard) serves it
//     at / and /status.json on the http_listen address, next to /metrics; a headless
//     Chromium loads it without console errors and sees a failing function's dead
//     letters appear (TestDashboardInChromium). Its tailers are the source tailers,
//     then the ingest tailers of functions with submit: true, marked Ingest
//     (TestStatusAPIListsIngestTailers).
//  8. The gRPC API is secured as node.grpc_tls and node.grpc_auth say (TLS, mutual TLS,
//     tokens, identities; scheduler/rpc enforces them), and a tailer-only node dials its
//     scheduler with node.scheduler_tls and node.scheduler_token_file
//     (TestSecuredGRPCPath). Without authentication on a non-loopback address, Start
//     logs a warning (TestWarnsWhenOpenOnTheNetwork). No secret is logged: a run at
//     debug level with a SASL password and tokens shows neither (internal/cli's
//     TestSecretsAppearNowhere). The listener's certificate, key and client CA and the
//     tokens file are re-read when their bytes change (polled every
//     Options.SecurityReloadInterval, 5s by default, by a goroutine of the node's run)
//     and on ReloadSecurity (SIGHUP in kasync run); new connections and calls use them,
//     and a file that does not load keeps the old configuration, never none, logged once
//     (TestRotatesGRPCSecurityWithoutRestart).
//  9. Hostile records never stop a partition, on the split path too: 10,000 headers,
//     names, values, keys and payloads that are not UTF-8 arrive byte for byte; forged
//     kasync headers on a source record are not believed (attempt 1, its own function);
//     a record over max_workload_bytes goes to the dead letter as too-large; the group
//     commits the log end (TestHostileRecordsNeverStopAPartition).
//  10. Logs (issue 6): at info a node logs one line per change of state (node, tailer,
//     partitions assigned and released, storm guard, workers), never one per record or
//     attempt; what can repeat per record (dead letters, panics, timeouts, produce
//     errors) is one line per kind every 30s with a count (internal/logrepeat). The same
//     run at 200 and 2,000 records, with retries through the ladder and dead letters,
//     logs as many info lines give or take a few, each parsing as JSON (or text) with
//     time, level and msg (TestLogsDoNotGrowWithRecords).
//  11. The gRPC status API (statusapi.go; proto kasync.v1.Node, GetStatus) serves Status
//     on the gRPC listener of a node with the scheduler role, behind the same TLS and
//     authentication as Scheduler and Tasks. With node.grpc_auth.identities, any listed
//     identity may read it whatever its grant, and an authenticated identity not listed
//     gets PERMISSION_DENIED; without identities, every authenticated caller may
//     (TestSecuredNodeStatusAndSubmit). A node answers with the roles it has
//     (TestStatusAPIAnswersBeforeTheDeadline: a scheduler-only node), and before the
//     caller's deadline: it stops reading the broker early enough to answer with what it
//     has, naming the rest in Problems (TestStatusAPIAnswersBeforeTheDeadline,
//     TestAnswerBy). Through a secured node, Submit is accepted from an identity whose
//     grant lists the function and PERMISSION_DENIED, with nothing produced, for any
//     other (TestSecuredNodeStatusAndSubmit).
package node
