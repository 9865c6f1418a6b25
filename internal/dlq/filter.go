package dlq

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrBadInput is wrapped by every error that bad input causes (a flag, a position, a
// target topic that does not exist): the command line shows it as a usage error, exit
// status 2, and nothing has been produced.
var ErrBadInput = errors.New("bad input")

// badInput is an error wrapping ErrBadInput whose message is the operator's.
type badInput struct{ msg string }

func (b badInput) Error() string { return b.msg }
func (b badInput) Unwrap() error { return ErrBadInput }

func badInputf(format string, args ...any) error {
	return badInput{fmt.Sprintf(format, args...)}
}

// Filter selects dead-letter entries. Zero fields select everything; set fields must all
// match.
type Filter struct {
	Functions []string  // kasync-function is one of these
	Reasons   []string  // kasync-reason is one of these
	Since     time.Time // dead-lettered at or after (record timestamp)
	Until     time.Time // dead-lettered before
	// ErrorContains is a substring of kasync-error, compared without regard to case.
	ErrorContains string
}

// Validate reports a filter that can select nothing because of its time range.
func (f Filter) Validate() error {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return badInputf("--since %s is not before --until %s; swap them or widen the range",
			f.Since.UTC().Format(time.RFC3339), f.Until.UTC().Format(time.RFC3339))
	}
	return nil
}

// Match reports whether f selects e.
func (f Filter) Match(e *Entry) bool {
	switch {
	case len(f.Functions) > 0 && !slices.Contains(f.Functions, e.Function):
		return false
	case len(f.Reasons) > 0 && !slices.Contains(f.Reasons, e.Reason):
		return false
	case !f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	case f.ErrorContains != "" && !strings.Contains(strings.ToLower(e.Error), strings.ToLower(f.ErrorContains)):
		return false
	}
	return true
}

// ParseTime reads a --since or --until value: an RFC 3339 time
// (2026-01-02T15:04:05Z, fractional seconds allowed) or a duration before now (2h, 30m,
// 1h30m). The empty string is the zero time: no bound.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time like 2026-01-02T15:04:05Z nor a duration ago like 2h or 30m", s)
}

// SplitList reads a comma-separated flag value: trimmed, empty items dropped.
func SplitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
