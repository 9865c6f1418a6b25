package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	kruntime "github.com/kasync/kasync/runtime"
)

// kasync_tasks counts a function's tasks by ATF state while they are held: with 100
// records in the log, a window of 20 and 4 attempts at a time, 80 are NEW, 16 ENQUEUED
// and 4 PROCESSING; once released, every state is back to 0.
func TestTaskStatesGauge(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 1)
	end := produce(t, brokers, topic, 100)
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.Functions[0].Concurrency = 4
		c.Functions[0].Adaptive.Disabled = true
		c.Tailers[0].MaxInFlight = 20
	})
	release := make(chan struct{})
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(ctx context.Context, _ *kruntime.Task) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	states := func() map[string]string {
		all := scrapeAll(t, nd.HTTPAddr(), "kasync_tasks{")
		return map[string]string{
			"NEW":        all[`kasync_tasks{function="fn",state="NEW"}`],
			"ENQUEUED":   all[`kasync_tasks{function="fn",state="ENQUEUED"}`],
			"PROCESSING": all[`kasync_tasks{function="fn",state="PROCESSING"}`],
		}
	}
	held := map[string]string{"NEW": "80", "ENQUEUED": "16", "PROCESSING": "4"}
	require.Eventually(t, func() bool { return equalStates(states(), held) }, 30*time.Second, 10*time.Millisecond,
		"while held: want %v, last %v", held, states())
	close(release)
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	done := map[string]string{"NEW": "0", "ENQUEUED": "0", "PROCESSING": "0"}
	require.Eventually(t, func() bool { return equalStates(states(), done) }, 30*time.Second, 10*time.Millisecond,
		"after the run: want %v, last %v", done, states())
	nd.stop(t)
}

func equalStates(a, b map[string]string) bool {
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}
