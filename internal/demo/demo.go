package demo

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	kruntime "github.com/kasync/kasync/runtime"
)

// maxShown bounds how much of a payload the echo function logs.
const maxShown = 200

// Registry returns a registry with the demo functions:
//   - echo: logs each event's key and value and succeeds;
//   - fail: fails every attempt (retriable), to watch retries and the dead letter;
//   - sleep: sleeps for the duration in the payload (e.g. "250ms"), a slow downstream.
func Registry(log *slog.Logger) *kruntime.Registry {
	reg := kruntime.NewRegistry()
	reg.MustRegister("echo", func(_ context.Context, t *kruntime.Task) error {
		log.Info("echo", "id", t.ID, "attempt", t.Attempt, "key", shorten(t.Key), "value", shorten(t.Payload))
		return nil
	})
	reg.MustRegister("fail", func(_ context.Context, t *kruntime.Task) error {
		return fmt.Errorf("demo function fail: attempt %d of %s failed on purpose", t.Attempt, t.ID)
	})
	reg.MustRegister("sleep", func(ctx context.Context, t *kruntime.Task) error {
		d, err := time.ParseDuration(string(t.Payload))
		if err != nil {
			return kruntime.Fatal(fmt.Errorf("demo function sleep: payload %q is not a duration like 250ms", shorten(t.Payload)))
		}
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return reg
}

func shorten(b []byte) string {
	if len(b) <= maxShown {
		return string(b)
	}
	return string(b[:maxShown]) + "…"
}
