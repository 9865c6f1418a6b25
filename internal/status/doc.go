// Package status owns what `kasync status` shows and how: the Report of tailer lag,
// delay rungs and the dead letter, read from the brokers alone (no running node
// needed), and its two renderings, terminal tables and JSON.
//
// The pure part has no I/O and no clock of its own: Lag and ReadFrom (compute.go) are
// the arithmetic of offsets; NewTailer, NewRung and NewDeadLetter build rows from a
// group's committed offsets and the topics' log offsets; PeekTargets says which records
// the ages and due times need and ApplyPeeks fills them in, as of Report.Time
// (Rung.PeekTargets and Rung.ApplyPeeks do it for one rung: a running node computes
// its rungs' oldest due and lateness with them, internal/node's Status); LooksLikeKasync, IsIngest and FindRungs (discover.go) pick kasync's groups (marking
// ingest tailers', which read a function's kasync.fn.<function>) and rung topics out
// of a cluster's; WriteTable and WriteJSON (table.go) render. Collect (collect.go,
// peek.go) is the Kafka shell around them: kadm requests and one short-lived direct
// consumer, Peek, which reads the records PeekTargets names.
//
// A running node's own snapshot (`kasync status --node`, from its gRPC status API) is
// a nodestatus.Status, not a Report: it has what brokers cannot tell (functions'
// counters, the storm guard, the watermarks in Pebble rather than the group commit that
// hands them over, the latest dead letters) and lacks what one node does not track
// (committed and end offsets). WriteNodeTable and WriteNodeJSON (nodetable.go) render
// it in the same style as WriteTable and WriteJSON.
//
// Where each fact comes from (Collect):
//
//   - committed offsets: OffsetFetch of the tailer's consumer group (the node commits its
//     watermark there at each checkpoint, so this trails the node by at most one
//     checkpoint interval); rung groups are named after their rung topic.
//   - log start and end: ListOffsets (earliest, latest).
//   - group state and members: DescribeGroups; a group the broker does not list is
//     StateNoGroup (a configured tailer that never ran).
//   - lag age: now minus the timestamp of the first record at or after the committed
//     offset (the oldest not done), read with a direct consumer.
//   - oldest due: the earliest kasync-due header of the rung partitions' heads (a rung
//     partition is ordered by due time); lateness is now minus it, when past.
//   - dead letter: log end minus log start per partition; counts by function and reason
//     need every record read, which `kasync dlq list` does.
//
// Caller's duties:
//
//  1. Bound Collect with a context deadline: every request honours it, and brokers that
//     cannot be reached fail the first request (ErrUnreachable) when it expires.
//  2. Treat *UnknownGroupsError as the operator's mistake (a group name that does not
//     exist); other errors are failures of the cluster or the network.
//
// Invariants:
//
//  1. Reading changes nothing: Collect joins no group and commits nothing; peeks use
//     direct consumers closed before Collect returns (TestCollectChangesNothing).
//  2. Lag is exact as of the requests: end − max(committed, log start), never negative,
//     every partition of the tailer's topic a row whether committed or not
//     (TestLag, TestCollectLagAndAge).
//  3. Waiting in a rung is end − max(committed, log start) summed over its partitions,
//     as kasync_delay_records counts it (TestCollectRungs).
//  4. A fact that cannot be read cheaply — a peek that fails or does not finish within
//     Request.PeekTimeout, a missing or bad kasync-due header — is unknown (null, "-"),
//     never guessed; a total over partitions is unknown when any part of it is
//     (TestApplyPeeks).
//  5. Ages and lateness are never negative: a timestamp ahead of the reading clock is
//     age 0 (TestApplyPeeks).
//  6. Ingest tailers (a function's kasync.fn.<function>) are listed and marked: from a
//     config, one per function with submit: true (IngestSpec); on the cluster, groups
//     named after an ingest topic or reading only ingest topics (IsIngest)
//     (TestIsIngest, TestCollectFindsKasyncGroups, TestWriteTable).
//  7. The node tables show a fact the node did not know as "-" or "unknown", never 0,
//     and the node's text on one line without control characters (TestWriteNodeTable).
package status
