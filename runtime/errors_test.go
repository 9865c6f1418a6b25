package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	kruntime "github.com/kasync/kasync/runtime"
	"github.com/kasync/kasync/scheduler"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	base := errors.New("card declined")
	cases := []struct {
		name string
		err  error
		want scheduler.Outcome
	}{
		{"nil", nil, scheduler.Success()},
		{"plain", base, scheduler.Retriable(scheduler.ReasonError, "card declined")},
		{"fatal", kruntime.Fatal(base), scheduler.Fatal(scheduler.ReasonFatal, "card declined")},
		{"fatal nil", kruntime.Fatal(nil), scheduler.Fatal(scheduler.ReasonFatal, "fatal error")},
		{"wrapped fatal", fmt.Errorf("charge: %w", kruntime.Fatal(base)), scheduler.Fatal(scheduler.ReasonFatal, "charge: card declined")},
		{"joined fatal", errors.Join(errors.New("a"), kruntime.Fatal(base)), scheduler.Fatal(scheduler.ReasonFatal, "a\ncard declined")},
		{"retry after", kruntime.RetryAfter(90*time.Second, base),
			scheduler.Outcome{Kind: scheduler.OutcomeRetriable, Reason: scheduler.ReasonError, Err: "card declined", RetryAfter: 90 * time.Second}},
		{"retry after nil", kruntime.RetryAfter(time.Second, nil),
			scheduler.Outcome{Kind: scheduler.OutcomeRetriable, Reason: scheduler.ReasonError, Err: "retry requested after 1s", RetryAfter: time.Second}},
		{"retry after negative", kruntime.RetryAfter(-time.Second, base), scheduler.Retriable(scheduler.ReasonError, "card declined")},
		{"wrapped retry after", fmt.Errorf("charge: %w", kruntime.RetryAfter(time.Minute, base)),
			scheduler.Outcome{Kind: scheduler.OutcomeRetriable, Reason: scheduler.ReasonError, Err: "charge: card declined", RetryAfter: time.Minute}},
		{"fatal wins over retry after", kruntime.RetryAfter(time.Minute, kruntime.Fatal(base)), scheduler.Fatal(scheduler.ReasonFatal, "card declined")},
		{"deadline", context.DeadlineExceeded, scheduler.Retriable(scheduler.ReasonTimeout, "context deadline exceeded")},
		{"wrapped deadline", fmt.Errorf("call bank: %w", context.DeadlineExceeded), scheduler.Retriable(scheduler.ReasonTimeout, "call bank: context deadline exceeded")},
		{"canceled", context.Canceled, scheduler.Retriable(scheduler.ReasonError, "context canceled")},
	}
	for _, c := range cases {
		require.Equal(t, c.want, kruntime.Classify(c.err), c.name)
	}
}

func TestErrorTypesUnwrap(t *testing.T) {
	t.Parallel()
	base := errors.New("x")
	var fe *kruntime.FatalError
	require.ErrorAs(t, fmt.Errorf("w: %w", kruntime.Fatal(base)), &fe)
	require.ErrorIs(t, fe, base)
	var ra *kruntime.RetryAfterError
	require.ErrorAs(t, fmt.Errorf("w: %w", kruntime.RetryAfter(time.Second, base)), &ra)
	require.Equal(t, time.Second, ra.After)
	require.ErrorIs(t, ra, base)
}
