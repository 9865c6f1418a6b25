package nodestatus

import "time"

// Status is a snapshot of one node.
type Status struct {
	// Taken is when the snapshot was taken.
	Taken time.Time `json:"taken"`
	// Roles are the parts this node runs: "scheduler", "tailer", "delay".
	Roles []string `json:"roles"`
	// NotReady lists what keeps the node from its work, as /readyz says it; empty when
	// the node is ready.
	NotReady []string `json:"not_ready,omitempty"`
	// Functions are the configured functions, sorted by name.
	Functions []Function `json:"functions"`
	// Tailers are the node's source tailers, in config order, then its ingest tailers
	// (Tailer.Ingest), in function order.
	Tailers []Tailer `json:"tailers"`
	// Rungs are the delay ladder's rungs, shortest first; empty on a node without Kafka.
	Rungs []Rung `json:"rungs"`
	// DeadLetters is the dead-letter topic as this node sees it.
	DeadLetters DeadLetters `json:"dead_letters"`
	// Problems lists the parts of the snapshot that could not be read (a broker that did
	// not answer in time), one line each. The rest of the snapshot is valid.
	Problems []string `json:"problems,omitempty"`
}

// Function is one function: its limits and counters in this node's scheduler, and its
// failure-storm guard in this node's tailers.
type Function struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	// Scheduled is true when the counters below are this node's scheduler's; false on
	// a node without the scheduler role, whose counters are all zero.
	Scheduled bool `json:"scheduled"`
	// Concurrency is the configured most attempts at once; Limit, the adaptive limit now
	// (at most Concurrency; it shrinks while the downstream is overloaded).
	Concurrency int `json:"concurrency"`
	Limit       int `json:"limit"`
	// HeldUntil, when set, is when new starts resume after an overloaded outcome's
	// retry-after.
	HeldUntil *time.Time `json:"held_until,omitempty"`
	Running   int        `json:"running"` // attempts running now (CLAIMED or PROCESSING)
	Queued    int        `json:"queued"`  // admitted, waiting to start (ENQUEUED)
	// Succeeded, Retriable and Fatal count the attempts that ended since the node
	// started, by outcome.
	Succeeded uint64 `json:"succeeded"`
	Retriable uint64 `json:"retriable"`
	Fatal     uint64 `json:"fatal"`
	// Durations are the durations of those attempts, by bucket; the difference of two
	// snapshots gives the percentiles of the time between them. Nil without the
	// scheduler role.
	Durations *Durations `json:"durations,omitempty"`
	// StormGuard is the function's failure-storm guard; nil when this node runs none
	// (storm_guard.disabled, or no tailer role).
	StormGuard *StormGuard `json:"storm_guard,omitempty"`
}

// Durations is a histogram of attempt durations since the node started: Counts[i]
// attempts took at most BoundsSeconds[i] and more than the bound before it; the last
// count, one more than the bounds, is of those longer than every bound.
type Durations struct {
	BoundsSeconds []float64 `json:"bounds_seconds"`
	Counts        []uint64  `json:"counts"`
}

// StormGuard is the failure-storm guard of one function.
type StormGuard struct {
	// Active is true while the guard is on: the function's source partitions are paused
	// and its failing work retries in place.
	Active bool `json:"active"`
	// Since is when the guard last turned on or off (or first saw the function); nil
	// before the function's first outcome.
	Since *time.Time `json:"since,omitempty"`
	// Outcomes and Failures are the counts in the guard's sliding window now (while
	// Active, those that tripped it).
	Outcomes int `json:"outcomes"`
	Failures int `json:"failures"`
	// Trips counts the times the guard turned on since the node started.
	Trips int64 `json:"trips"`
}

// Tailer is one tailer of a source topic, or of a function's ingest topic.
type Tailer struct {
	Name     string `json:"name"`
	Topic    string `json:"topic"`
	Function string `json:"function"`
	Group    string `json:"group"`
	// Member is true while the tailer is a member of its consumer group.
	Member bool `json:"member"`
	// InFlight is the records read and not done, over all its partitions.
	InFlight int64 `json:"in_flight"`
	// Partitions are the partitions it owns now, by number.
	Partitions []Partition `json:"partitions"`
	// Ingest is true for the tailer of a function's ingest topic, kasync.fn.<function>
	// (functions[].submit: true), which reads the tasks Submit wrote; its Name, Topic
	// and Group are that topic. False for a tailer of the config's tailers.
	Ingest bool `json:"ingest"`
}

// Partition is how far behind a tailer is on one partition it owns.
type Partition struct {
	Partition int32 `json:"partition"`
	// LagRecords is the log end (as of the latest fetch with records) minus the
	// watermark: records not done yet, read or not.
	LagRecords int64 `json:"lag_records"`
	// LagSeconds is how long ago the oldest record read and not done was produced; 0
	// when every record read is done.
	LagSeconds float64 `json:"lag_seconds"`
}

// Rung is one rung of the delay ladder.
type Rung struct {
	Name         string  `json:"name"` // as in its topic and metrics: "30s", "250ms"
	Topic        string  `json:"topic"`
	DelaySeconds float64 `json:"delay_seconds"`
	// Depth is the records waiting on the rung, over the whole cluster: the topic's end
	// offsets minus its readers' group commits. Nil when the broker did not answer.
	Depth *int64 `json:"depth"`
	// OldestDue is the earliest kasync-due time of the heads (the oldest records not
	// done) of the rung's partitions with records waiting, read from the broker: each
	// partition of a rung is ordered by due time, so that is when the rung's oldest
	// record is due. Nil when nothing waits, or when it could not be read (named in
	// Problems; an unknown Depth makes it unknown too).
	OldestDue *time.Time `json:"oldest_due"`
	// LatenessSeconds is Taken minus OldestDue when that is past, else 0: how long the
	// rung's oldest record has been due and not done. Nil with OldestDue.
	LatenessSeconds *float64 `json:"lateness_seconds"`
	// Reading is true when this node runs a reader of the rung (the delay role); Held
	// and InFlight are then its counts: records it holds until they are due, and
	// records it read and has not finished.
	Reading  bool  `json:"reading"`
	Held     int64 `json:"held"`
	InFlight int64 `json:"in_flight"`
}

// DeadLetters is the dead-letter topic.
type DeadLetters struct {
	Topic string `json:"topic"`
	// Counts are the dead letters this node wrote since it started, by function and
	// reason (kasync_dead_letter_total), sorted by function then reason.
	Counts []DeadLetterCount `json:"counts"`
	// Latest are the most recent records of the dead-letter topic, written by any
	// node, newest first. Nil when they could not be read (see Problems).
	Latest []DeadLetter `json:"latest"`
}

// DeadLetterCount is the number of dead letters of one function and reason.
type DeadLetterCount struct {
	// Function is "" for records whose kasync-function named no configured function.
	Function string `json:"function"`
	Reason   string `json:"reason"`
	Count    uint64 `json:"count"`
}

// DeadLetter is one record of the dead-letter topic, as kasync's headers describe it.
// Header values are shown as written, not trusted.
type DeadLetter struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Time      time.Time `json:"time"` // the record's timestamp: when it was dead-lettered
	Function  string    `json:"function"`
	Reason    string    `json:"reason"`
	Error     string    `json:"error"` // the last error, as the function returned it (truncated by kasync)
	Attempt   int       `json:"attempt"`
	Origin    string    `json:"origin"` // <topic>/<partition>/<offset> of the source record
	Key       string    `json:"key"`    // printable, cut to one short line
}
