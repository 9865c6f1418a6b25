package tasks

import (
	"errors"
	"fmt"
	"strings"
)

// State is a task state, named as in Dropbox ATF (DESIGN.md, "Outcomes and task states").
type State string

const (
	StateNew        State = "NEW"               // in its topic: submitted, or scheduled on a rung
	StateEnqueued   State = "ENQUEUED"          // handed to the scheduler for attempt Attempts
	StateProcessing State = "PROCESSING"        // running (not recorded: the scheduler does not report starts)
	StateRetriable  State = "RETRIABLE_FAILURE" // an attempt failed; the next is due at Due
	StateSuccess    State = "SUCCESS"           // done
	StateFatal      State = "FATAL_FAILURE"     // dead-lettered; see Reason
)

// rank orders the states of one attempt.
func (s State) rank() int {
	switch s {
	case StateNew:
		return 0
	case StateEnqueued:
		return 1
	case StateProcessing:
		return 2
	case StateRetriable:
		return 3
	case StateSuccess, StateFatal:
		return 4
	}
	return -1
}

// Terminal reports whether s is a final state.
func (s State) Terminal() bool { return s == StateSuccess || s == StateFatal }

// Status is what the task status topic holds per task id: its value, JSON.
type Status struct {
	ID        string `json:"id"`
	Function  string `json:"function,omitempty"`
	State     State  `json:"state"`
	Attempts  int    `json:"attempts"` // attempts started; 0 before the first
	LastError string `json:"last_error,omitempty"`
	Reason    string `json:"reason,omitempty"`
	CreatedMs int64  `json:"created_ms,omitempty"`
	UpdatedMs int64  `json:"updated_ms"`
	DueMs     int64  `json:"due_ms,omitempty"` // NEW and RETRIABLE_FAILURE: when the next attempt is due
}

// Merge folds the transition next into cur, the state known so far (nil: none), and
// returns the new state. Transitions of one task come from several nodes (the submit,
// the ingest tailer, rung readers) and may arrive out of order, so the state only ever
// moves forward: by attempt, then by state within an attempt (NEW < ENQUEUED <
// PROCESSING < RETRIABLE_FAILURE < SUCCESS, FATAL_FAILURE); a final state stays final
// (a later final state of a higher attempt replaces it). What an older transition
// knows and the newer does not (function, created time, last error and reason) is kept.
// Merge is pure, so the index gives the same answer whatever order it reads in.
func Merge(cur *Status, next Status) Status {
	if cur == nil {
		return next
	}
	newer, older := next, *cur
	switch {
	case cur.State.Terminal() && !(next.State.Terminal() && next.Attempts > cur.Attempts):
		newer, older = *cur, next
	case next.Attempts < cur.Attempts,
		next.Attempts == cur.Attempts && next.State.rank() < cur.State.rank():
		newer, older = *cur, next
	}
	if newer.Function == "" {
		newer.Function = older.Function
	}
	if newer.LastError == "" && newer.Reason == "" {
		newer.LastError, newer.Reason = older.LastError, older.Reason
	}
	if older.CreatedMs > 0 && (newer.CreatedMs == 0 || older.CreatedMs < newer.CreatedMs) {
		newer.CreatedMs = older.CreatedMs
	}
	newer.UpdatedMs = max(newer.UpdatedMs, older.UpdatedMs)
	return newer
}

// CheckID returns an error unless id looks like a task id, <topic>/<partition>/<offset>.
func CheckID(id string) error {
	if id == "" {
		return errors.New("empty; give a task id, like kasync.fn.charge/0/42")
	}
	if topicOf(id) == "" {
		return fmt.Errorf("%q is not a task id; task ids are <topic>/<partition>/<offset>, like kasync.fn.charge/0/42", id)
	}
	return nil
}

// topicOf is the topic of a task id "<topic>/<partition>/<offset>", or "".
func topicOf(id string) string {
	j := strings.LastIndexByte(id, '/')
	if j <= 0 {
		return ""
	}
	i := strings.LastIndexByte(id[:j], '/')
	if i <= 0 || i+1 == j || j+1 == len(id) {
		return ""
	}
	return id[:i]
}
