package node

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAnswerBy: GetStatus stops reading the broker before the caller's deadline,
// keeping a quarter of the time left (at most statusReplyMargin) for the answer, and
// never after a deadline already past.
func TestAnswerBy(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(left time.Duration) time.Time {
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(left))
		defer cancel()
		return answerBy(ctx, now)
	}
	require.Equal(t, now.Add(750*time.Millisecond), at(time.Second))
	require.Equal(t, now.Add(10*time.Second-statusReplyMargin), at(10*time.Second))
	require.Equal(t, now.Add(-time.Second), at(-time.Second), "a deadline past stays past")
	require.Equal(t, now.Add(statusTimeout), answerBy(context.Background(), now), "no deadline: Status's own bound")
}
