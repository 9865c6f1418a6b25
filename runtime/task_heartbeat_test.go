package runtime

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTaskHeartbeatCallsFunc(t *testing.T) {
	t.Parallel()
	var task Task
	require.NoError(t, task.Heartbeat(context.Background()))
	lost := errors.New("stream gone")
	calls := 0
	task.heartbeatFunc = func(context.Context) error { calls++; return lost }
	require.ErrorIs(t, task.Heartbeat(context.Background()), lost)
	require.Equal(t, 1, calls)
}
