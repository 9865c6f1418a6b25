// Package dlq owns what `kasync dlq` does with the dead-letter topic: reading it
// (list, show) and redriving selected dead letters, once, to their source topic or
// another one, with a durable record of what was redriven.
//
// The pure parts have no I/O and no clock of their own: Entry (entry.go) reads kasync's
// headers out of a dead-letter record without trusting them; Filter (filter.go) selects
// entries by function, reason, time range and error text; Ledger (ledger.go) is the set
// of positions already redriven; NewPlan and RedriveRecord (plan.go) decide what a
// redrive produces, and where, before anything is produced. Conn (conn.go, redrive.go)
// is the Kafka shell around them; Progress and the table (progress.go, format.go) are
// what the command line shows.
//
// # The ledger
//
// Every redriven dead letter is marked in the compacted topic "<dead-letter
// topic>.redriven" (LedgerTopic; created by EnsureLedger with one partition and
// cleanup.policy=compact), keyed by "<partition>/<offset>" of the dead letter, with the
// redriven copy's position, the time and the dead-letter topic's ID as value. A redrive
// reads the whole ledger (to its end offsets as of the start) before it selects
// anything. A tombstone for a key lets that record be redriven again. Marks written
// under another topic ID (the dead-letter topic was deleted and created again, so its
// offsets restarted) are ignored. Run one redrive of a dead-letter topic at a time: two
// at once read the same ledger and may both redrive the same records.
//
// Caller's duties:
//
//  1. Read the ledger (Conn.ReadLedger) before planning, pass the same Ledger to NewPlan
//     and Conn.Redrive, and call Conn.CheckTargets and Conn.EnsureLedger before
//     Conn.Redrive.
//  2. Treat ErrBadInput as the operator's mistake (exit status 2): it is returned before
//     anything is produced.
//
// Invariants:
//
//  1. Reading changes nothing: list, show and a dry run read the dead-letter topic and
//     the ledger with direct consumers (no group, no commits), from the start offsets to
//     the end offsets as of the start of the read, and produce nothing
//     (TestDryRunChangesNothing). Conn.Tail, the latest dead letters a node's status
//     shows, reads the same way from the last n offsets of each partition
//     (TestTailReadsTheLatest).
//  2. Nothing is produced unless the whole plan can be: every target topic exists, every
//     selected record has a target (its kasync-origin, or --to), and --to never mixes
//     functions in one topic (TestRedriveToMissingTopic, TestPlan).
//  3. A dead letter is marked only after the broker acknowledged its redriven copy
//     (acks=all, idempotent producer), so a mark never names a copy that could be lost.
//     The converse is at least once: a crash (or a lost ack) between the ack and the
//     mark leaves the copy unmarked, and the next run redrives it again — at most the
//     records of one batch (100, or a tenth of a second's worth at --rate). Marks of
//     acknowledged copies are written even after the context is cancelled
//     (Ctrl-C), within markTimeout.
//  4. A position marked in the ledger is never redriven again by a later run: the same
//     filter run twice produces every selected record exactly once
//     (TestRedriveOnceThenNothing).
//  5. A redriven record keeps the dead letter's key, value and non-kasync headers and
//     kasync-priority, drops kasync's other headers (attempt, due, origin, first
//     failure, error, reason, function, dropped: the copy is a new event, attempt 1),
//     and carries kasync-redriven-from: <dead-letter topic>/<partition>/<offset>
//     (TestRedriveRecord). It is partitioned by key, as the source record was by most
//     producers.
//  6. A dead letter whose value was dropped to fit (kasync-dropped) is never redriven:
//     it would run the function on an empty payload (TestPlan).
//
// Memory: list keeps only the entries it shows (--limit); a redrive holds the selected
// records, values included, until it is done, so narrow a huge selection with filters
// or --limit.
//
// A partition whose last offsets before the end are transaction markers would keep a
// read waiting: kasync writes dead letters without transactions.
package dlq
