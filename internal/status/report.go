package status

import "time"

// Report is what `kasync status` shows: the facts an operator asks first — how far
// behind each tailer is, what waits in the delay rungs, how much is dead. It is a plain
// value with JSON tags (`kasync status --json` prints it as is), filled today from the
// brokers alone (Collect); a running node's gRPC status API is meant to fill the same
// struct from its own state, so that one renderer and one JSON shape serve both.
//
// Offsets are Kafka offsets; -1 means "none" (no commit). Pointers are null in JSON
// when a fact could not be read cheaply (a record that did not arrive within the peek
// timeout, a header that was missing): the table shows "-".
type Report struct {
	// Time is when the facts were read; ages and lateness are measured from it.
	Time time.Time `json:"time"`
	// Source says where the facts come from: SourceBrokers for Collect.
	Source string `json:"source"`
	// Brokers are the seed brokers the facts were read from.
	Brokers    []string   `json:"brokers"`
	Tailers    []Tailer   `json:"tailers"`
	Rungs      []Rung     `json:"rungs"`
	DeadLetter DeadLetter `json:"dead_letter"`
}

// SourceBrokers is Report.Source when the facts were read from the brokers with admin
// requests: committed offsets are the consumer groups' (the tailers' hand-off copy of
// their checkpoints, at most one commit interval behind them).
const SourceBrokers = "brokers"

// Tailer is one consumer group reading source topics: a configured tailer, the ingest
// tailer of a configured function with submit: true, a group named with --group, or a
// group found on the cluster that looks like kasync's.
type Tailer struct {
	// Name is the configured tailer's name, or for the ingest tailer of a configured
	// function its ingest topic (as the node names it); empty for a group not from a
	// config.
	Name  string `json:"name,omitempty"`
	Group string `json:"group"`
	// Ingest is true for an ingest tailer: it reads a function's ingest topic,
	// kasync.fn.<function>, where Submit writes tasks (IngestSpec, IsIngest).
	Ingest bool `json:"ingest"`
	// State is the group's state as the broker reports it (Stable, Empty,
	// PreparingRebalance, ...), or StateNoGroup when the broker has no such group yet.
	State string `json:"state"`
	// Members is the number of members in the group now.
	Members int `json:"members"`
	// Lag is the sum of the partitions' lags, in records.
	Lag int64 `json:"lag"`
	// MaxLagSeconds is the largest LagSeconds of the partitions, null when any lagging
	// partition's age is unknown.
	MaxLagSeconds *float64          `json:"max_lag_seconds"`
	Partitions    []TailerPartition `json:"partitions"`
	// Error is why some facts are missing (a topic that does not exist, a request that
	// failed); empty when all were read.
	Error string `json:"error,omitempty"`
}

// StateNoGroup is Tailer.State and Rung.State for a group the broker does not know: a
// tailer that never started, or never committed.
const StateNoGroup = "no group"

// TailerPartition is one partition a tailer reads.
type TailerPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the group's committed offset (the next record to process), -1 when
	// the group committed nothing for this partition.
	Committed int64 `json:"committed"`
	LogStart  int64 `json:"log_start"`
	LogEnd    int64 `json:"log_end"`
	// Lag is how many records are not done: LogEnd minus the committed offset (or
	// minus LogStart when nothing was committed or retention removed the committed
	// offset), at least 0. See Lag.
	Lag int64 `json:"lag"`
	// LagSeconds is the age, at Report.Time, of the oldest record not done (by its
	// timestamp): 0 without lag, null when it could not be read.
	LagSeconds *float64 `json:"lag_seconds"`
}

// Rung is one delay rung topic and the group of its delay readers (named after the
// topic).
type Rung struct {
	// Delay is the rung's delay as written in its topic name ("30s"), empty when unknown.
	Delay   string `json:"delay,omitempty"`
	Topic   string `json:"topic"`
	Group   string `json:"group"`
	State   string `json:"state"`
	Members int    `json:"members"`
	// Waiting is the sum of the partitions' Waiting.
	Waiting int64 `json:"waiting"`
	// OldestDue is the earliest kasync-due of the partitions' heads (each partition of a
	// rung is ordered by due time, so its head is its oldest), null when nothing waits
	// or no head's due time could be read.
	OldestDue *time.Time `json:"oldest_due"`
	// LatenessSeconds is Report.Time minus OldestDue when that is past, else 0; null
	// with OldestDue.
	LatenessSeconds *float64        `json:"lateness_seconds"`
	Partitions      []RungPartition `json:"partitions"`
	Error           string          `json:"error,omitempty"`
}

// RungPartition is one partition of a rung topic.
type RungPartition struct {
	Partition int32 `json:"partition"`
	Committed int64 `json:"committed"`
	LogStart  int64 `json:"log_start"`
	LogEnd    int64 `json:"log_end"`
	// Waiting is LogEnd minus the rung group's committed offset (LogStart when none),
	// at least 0: the records produced to the rung and not yet done.
	Waiting int64 `json:"waiting"`
	// Due is the kasync-due time of the record at the committed offset (the head),
	// null when nothing waits or it could not be read.
	Due *time.Time `json:"due"`
}

// DeadLetter is the dead-letter topic's size. Counts by function and reason need a
// read of every record: `kasync dlq list` does that.
type DeadLetter struct {
	Topic string `json:"topic"`
	// Records is the sum over partitions of LogEnd minus LogStart.
	Records    int64                 `json:"records"`
	Partitions []DeadLetterPartition `json:"partitions"`
	Error      string                `json:"error,omitempty"`
}

// DeadLetterPartition is one partition of the dead-letter topic.
type DeadLetterPartition struct {
	Partition int32 `json:"partition"`
	LogStart  int64 `json:"log_start"`
	LogEnd    int64 `json:"log_end"`
	Records   int64 `json:"records"`
}
