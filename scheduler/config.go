package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// DefaultMaxWorkloadBytes is the size limit of a workload when Config.MaxWorkloadBytes is 0.
const DefaultMaxWorkloadBytes = 1 << 20

// Function is one function the scheduler dispatches, with its limits.
type Function struct {
	Name string
	// Concurrency is the most attempts of this function running at once (>= 1).
	Concurrency int
	// Timeout is the time one attempt may run, passed to Executor.Execute (> 0).
	Timeout time.Duration
	// Rate is the most attempts started per second, over all of the function's
	// workers (a token bucket holding a tenth of a second's starts, at least one);
	// 0 means no limit.
	Rate float64
	// Executor runs the attempts.
	Executor Executor
}

// Config configures a Scheduler.
type Config struct {
	Functions []Function
	// MaxWorkloadBytes is the largest Workload.Size() admitted; larger workloads get
	// Fatal(ReasonTooLarge). 0 means DefaultMaxWorkloadBytes.
	MaxWorkloadBytes int
	// Logger receives panics, invalid outcomes and lifecycle events. nil means slog.Default().
	Logger *slog.Logger
}

// withDefaults returns a copy of c with zero values replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.MaxWorkloadBytes == 0 {
		c.MaxWorkloadBytes = DefaultMaxWorkloadBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports every problem of c at once, each naming the field and the fix.
func (c Config) validate() error {
	var errs []error
	if len(c.Functions) == 0 {
		errs = append(errs, errors.New("Functions is empty; configure at least one function"))
	}
	if c.MaxWorkloadBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxWorkloadBytes is %d; use a positive byte count, or 0 for the default %d",
			c.MaxWorkloadBytes, DefaultMaxWorkloadBytes))
	}
	seen := make(map[string]int, len(c.Functions))
	for i, f := range c.Functions {
		field := fmt.Sprintf("Functions[%d] (%q)", i, f.Name)
		if f.Name == "" {
			errs = append(errs, fmt.Errorf("%s: Name is empty; give every function a name", field))
		} else if j, dup := seen[f.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: Name duplicates Functions[%d]; function names must be unique", field, j))
		} else {
			seen[f.Name] = i
		}
		if f.Concurrency < 1 {
			errs = append(errs, fmt.Errorf("%s: Concurrency is %d; set it to at least 1", field, f.Concurrency))
		}
		if f.Timeout <= 0 {
			errs = append(errs, fmt.Errorf("%s: Timeout is %v; set a positive per-attempt timeout such as 30s", field, f.Timeout))
		}
		if f.Rate < 0 || math.IsNaN(f.Rate) || math.IsInf(f.Rate, 0) {
			errs = append(errs, fmt.Errorf("%s: Rate is %v; set the most starts per second, like 500, or 0 for no limit", field, f.Rate))
		}
		if f.Executor == nil {
			errs = append(errs, fmt.Errorf("%s: Executor is nil; set the executor that runs this function", field))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scheduler: invalid config: %w", err)
	}
	return nil
}

// ExecutorFunc adapts a plain function to an Executor.
type ExecutorFunc func(ctx context.Context, w *Workload, timeout time.Duration) Outcome

// Execute calls f(ctx, w, timeout).
func (f ExecutorFunc) Execute(ctx context.Context, w *Workload, timeout time.Duration) Outcome {
	return f(ctx, w, timeout)
}
