// Package broker runs kasync's embedded development broker: franz-go's
// in-process Kafka-compatible cluster (kfake) behind a small, validated API.
// It backs `kasync dev`, `kasync broker` and the integration tests, and it is
// the only package in kasync that imports kfake.
//
// What the package owns:
//
//   - Options: the listen address, the data directory, sync writes, default
//     partition count and the topics to create at start. Options.Validate
//     reports every problem at once, naming the field and the fix.
//   - The broker's lifecycle: Start, Addrs, CreateTopic, Close.
//   - Banner: the plain statement, printed at start, that this is a
//     development broker and what it keeps and does not keep.
//
// Invariants:
//
//  1. One node, one copy of the data. The broker never pretends to replicate;
//     Banner says so.
//  2. It listens on 127.0.0.1 only (kfake binds nothing else). A listen
//     address naming another host is rejected by Validate instead of being
//     silently rebound.
//  3. With an empty DataDir everything lives in memory and nothing survives
//     Close. With a DataDir, topics, records and committed group offsets
//     written before Close are there again after Start on the same
//     directory. Without SyncWrites, records are fsynced only on segment roll
//     and on Close, so a machine crash can lose the newest records; with
//     SyncWrites every produced batch is fsynced before it is acknowledged.
//  4. At most one broker uses a DataDir at a time: Start takes an exclusive
//     lock file in the directory and Close releases it.
//  5. CreateTopic is idempotent: a topic that already exists is not an error,
//     and its partition count is left as it is.
//  6. Close is idempotent and every call after the first returns nil. After
//     Close, CreateTopic returns ErrClosed instead of blocking.
//  7. kfake's own logs go to the Options.Logger at a quiet level: its errors
//     and warnings stay errors and warnings, everything else is debug.
package broker
