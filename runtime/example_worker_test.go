package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	kruntime "github.com/kasync/kasync/runtime"
)

// A worker process: register functions, connect to the scheduler and serve until
// SIGINT or SIGTERM, then drain.
func ExampleWorker() {
	reg := kruntime.NewRegistry()
	err := reg.Register("charge", func(ctx context.Context, t *kruntime.Task) error {
		if len(t.Payload) == 0 {
			// No attempt will ever succeed: straight to the dead-letter topic.
			return kruntime.Fatal(errors.New("empty charge request"))
		}
		// ... call the payment provider with ctx ...
		if err := t.Heartbeat(ctx); err != nil {
			return err // the scheduler has given up on this attempt
		}
		return nil
	})
	if err != nil {
		slog.Error("register", "error", err)
		os.Exit(2)
	}

	w, err := kruntime.NewWorker(kruntime.WorkerConfig{
		Addrs:        []string{"127.0.0.1:7070"},
		Registry:     reg,
		Capacity:     32,
		DrainTimeout: 20 * time.Second,
	})
	if err != nil {
		slog.Error("worker config", "error", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = w.Run(ctx) // nil after a clean drain
	stop()
	if err != nil {
		slog.Error("worker", "error", err)
		os.Exit(1)
	}
}
