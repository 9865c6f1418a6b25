// Package bench is the harness behind `kasync bench`: it measures kasync against the
// reading limit of the broker (a raw franz-go consumer group), a hand-written franz-go
// consumer, and a task queue peer (Asynq on Redis), one after another in one run.
//
// Every measured mode runs in processes of its own, started by the harness, so that CPU
// time and peak RSS (from the kernel's rusage) are the mode's alone; the harness only
// produces and reads the children's events (package benchproto). The broker runs in a
// process of its own too, unless --brokers names one.
//
// Invariants:
//   - Every mode reads the same backlog (one topic, a fresh consumer group per mode).
//   - Latency is produce → function start, from a nanosecond stamp the producer writes
//     into the payload, measured where the function runs. Throughput is counted from
//     the moment the mode's consumer group has every partition assigned (seen from
//     outside with DescribeGroups) to the last function start: process start-up and the
//     group join are not in it, the first fetch is. (From the first start instead, a
//     consumer that decodes a whole 50 MB fetch before handing out its first record
//     would look several times faster than it reads.) Asynq has no group: its rate is
//     counted between its first and last start.
//   - A child that stops making progress is killed, and its row says so; the harness
//     never waits forever and never leaves a child running.
package bench
