package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kasync/kasync/scheduler"
)

// FatalError marks an error after which the task will never succeed: it goes to the
// dead-letter topic without another attempt. Make one with Fatal; recognise one with
// errors.As.
type FatalError struct {
	Err error
}

// Fatal wraps err so the task is dead-lettered at once instead of retried. Use it for
// input no attempt can handle: a payload that does not decode, a reference to
// something that does not exist. Fatal(nil) is a fatal error with no detail.
func Fatal(err error) error { return &FatalError{Err: err} }

func (e *FatalError) Error() string {
	if e.Err == nil {
		return "fatal error"
	}
	return e.Err.Error()
}

func (e *FatalError) Unwrap() error { return e.Err }

// RetryAfterError asks for the task to be retried, not before After. Make one with
// RetryAfter; recognise one with errors.As.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

// RetryAfter wraps err so the task is retried no sooner than d from now (kasync
// rounds it up to its delay rungs). Use it when the function knows when to try
// again: a rate limit's reset, a dependency's maintenance window.
func RetryAfter(d time.Duration, err error) error { return &RetryAfterError{After: d, Err: err} }

func (e *RetryAfterError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("retry requested after %v", e.After)
	}
	return e.Err.Error()
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// Classify turns what a function returned into the outcome of its attempt:
//
//   - nil: Success;
//   - a *FatalError anywhere in the chain: Fatal(ReasonFatal), even if a
//     *RetryAfterError wraps it;
//   - a *RetryAfterError: Retriable(ReasonError) with RetryAfter set (0 if negative);
//   - context.DeadlineExceeded: Retriable(ReasonTimeout);
//   - any other error: Retriable(ReasonError).
func Classify(err error) scheduler.Outcome {
	if err == nil {
		return scheduler.Success()
	}
	if _, ok := errors.AsType[*FatalError](err); ok {
		return scheduler.Fatal(scheduler.ReasonFatal, err.Error())
	}
	if ra, ok := errors.AsType[*RetryAfterError](err); ok {
		o := scheduler.Retriable(scheduler.ReasonError, err.Error())
		o.RetryAfter = max(ra.After, 0)
		return o
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return scheduler.Retriable(scheduler.ReasonTimeout, err.Error())
	}
	return scheduler.Retriable(scheduler.ReasonError, err.Error())
}
