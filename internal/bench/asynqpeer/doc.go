// Command kasync-bench-asynq is the Asynq peer of `kasync bench`: the harness runs it as
// child processes to measure Asynq (github.com/hibiken/asynq) on a local Redis with the
// same workload and the same events (package benchproto) as the kasync modes.
//
// It is a nested module so that the main module never depends on Asynq; from kasync it
// imports benchproto only. Build it with
//
//	cd internal/bench/asynqpeer && go build -o ../../../bin/kasync-bench-asynq .
//
// Subcommands:
//
//	serve   --redis ADDR --n N [--concurrency 64] [--queue default]
//	        [--progress-every 100ms] [--stall 30s] [--task-check-interval 1ms] [--servers 1]
//	enqueue --redis ADDR --n N [--size 16] [--rate 0] [--queue default] [--clients 8]
//
// What a caller must do:
//  1. Run enqueue and serve against the same --redis and --queue; serve waits for N
//     distinct tasks, so a queue holding fewer never finishes (it stalls instead).
//  2. Read serve's stdout with benchproto.Reader; start producing after the "ready" event
//     if latency matters.
//  3. Stop serve with SIGTERM or SIGINT only when abandoning the run: it then shuts Asynq
//     down cleanly and exits non-zero without a result.
//
// What the peer guarantees:
//  1. serve writes nothing but events on stdout: "ready" once, after the Asynq server has
//     started; "progress" every --progress-every; "result" once, last, after N distinct
//     tasks started and returned and the server shut down; then it exits 0.
//  2. A task is identified by the 8-byte big-endian index after the produce stamp in its
//     payload; starts of an index already seen are counted as Duplicates, not in Count.
//  3. serve exits non-zero, with the reason on stderr, when no new task starts for
//     --stall, when Redis cannot be reached, or on a signal.
//  4. enqueue stamps each payload at its own enqueue time and prints one JSON line,
//     {"enqueued":N,"seconds":S,"rate":R}, only when all N tasks were enqueued.
//  5. Logs (the peer's and Asynq's, the latter at warn level and above) go to stderr.
//
// Asynq is run as fast as it fairly goes: one queue, StrictPriority off, a Redis pool
// larger than the concurrency, a 1s ShutdownTimeout, and TaskCheckInterval 1ms instead
// of Asynq's 1s, which is a pause after each empty poll meant to spare Redis and would
// otherwise dominate latency whenever the producer is slower than the server. Its
// throughput is bound by its design, not by the settings: one dequeue loop per
// asynq.Server fetches one task per Redis round trip (a Lua script), and each task
// costs a second script to mark it done.
package main
