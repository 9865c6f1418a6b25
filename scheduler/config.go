package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	// Tenant names the Config.Tenants entry this function belongs to; "" means the
	// built-in tenant "default" (weight 1, no quotas), which a Tenants entry named
	// "default" overrides.
	Tenant string
	// Adaptive configures the adaptive concurrency limit; the zero value turns it on
	// with its defaults.
	Adaptive AdaptiveConfig
}

// AdaptiveConfig configures a function's adaptive concurrency limit (AIMD): the limit
// starts at Function.Concurrency, halves (at most once per round trip, down to Min)
// when an attempt ends ReasonOverloaded or ReasonTimeout, and grows back by about one
// per round trip of successes. An overloaded outcome with a RetryAfter also holds
// the function's new starts until then (at most MaxHold).
type AdaptiveConfig struct {
	// Disabled turns the adaptive limit and Retry-After holds off: the limit stays at
	// Function.Concurrency.
	Disabled bool
	// Min is the lowest the limit goes, in [1, Concurrency]; 0 means 1.
	Min int
	// LatencyFactor, when > 1, also shrinks the limit when a short-term average of the
	// successes' latency passes LatencyFactor times its long-term average. 0 (the
	// default) turns the latency signal off: in-process functions have latencies of
	// microseconds whose noise (GC, scheduling) would shrink the limit for nothing, and
	// an overloaded downstream is better told by its 429/503 and timeouts. Useful for
	// HTTP functions whose downstream slows down before it refuses, e.g. 2.
	LatencyFactor float64
}

// DefaultTenant is the tenant of a function whose Tenant is "".
const DefaultTenant = "default"

// Tenant is a group of functions that shares the scheduler's capacity with other
// tenants by weight and may be held to quotas.
type Tenant struct {
	Name string
	// Weight is the tenant's share of MaxConcurrency against other tenants with
	// waiting work (slot-time, not starts); 0 means 1.
	Weight int
	// Concurrency is the most attempts of the tenant's functions running at once;
	// 0 means no quota.
	Concurrency int
	// Rate is the most attempts started per second over all the tenant's functions (a
	// token bucket holding a tenth of a second's starts, at least one); 0 means no limit.
	Rate float64
}

// Config configures a Scheduler.
type Config struct {
	Functions []Function
	// MaxWorkloadBytes is the largest Workload.Size() admitted; larger workloads get
	// Fatal(ReasonTooLarge). 0 means DefaultMaxWorkloadBytes.
	MaxWorkloadBytes int
	// Logger receives panics, invalid outcomes and lifecycle events. nil means slog.Default().
	Logger *slog.Logger
	// Tenants share MaxConcurrency by weight and carry quotas; functions name theirs
	// in Function.Tenant. nil means every function is in tenant "default".
	Tenants []Tenant
	// MaxConcurrency is the most attempts running at once over all functions, shared
	// by tenants by weight; 0 means no global cap.
	MaxConcurrency int
	// Registerer, when non-nil, registers a collector of the gauges
	// kasync_concurrency_limit{function}, kasync_inflight{function} and
	// kasync_queued{function}, read at scrape time; Close unregisters it.
	Registerer prometheus.Registerer
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
	if c.MaxConcurrency < 0 {
		errs = append(errs, fmt.Errorf("MaxConcurrency is %d; set the most attempts running at once over all functions, or 0 for no cap",
			c.MaxConcurrency))
	}
	tenants, tenantErrs := c.validateTenants()
	errs = append(errs, tenantErrs...)
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
		errs = append(errs, f.Adaptive.validate(field, f.Concurrency)...)
		if _, ok := tenants[f.tenantName()]; !ok {
			errs = append(errs, fmt.Errorf("%s: Tenant %q is not in Tenants; add it to Tenants or leave Tenant empty for %q",
				field, f.Tenant, DefaultTenant))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scheduler: invalid config: %w", err)
	}
	return nil
}

// validateTenants checks Tenants and returns the set of tenant names a function may
// name, "default" included.
func (c Config) validateTenants() (map[string]int, []error) {
	var errs []error
	names := map[string]int{DefaultTenant: -1}
	for i, t := range c.Tenants {
		field := fmt.Sprintf("Tenants[%d] (%q)", i, t.Name)
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("%s: Name is empty; give every tenant a name", field))
		} else if j, dup := names[t.Name]; dup && j >= 0 {
			errs = append(errs, fmt.Errorf("%s: Name duplicates Tenants[%d]; tenant names must be unique", field, j))
		} else {
			names[t.Name] = i
		}
		if t.Weight < 0 {
			errs = append(errs, fmt.Errorf("%s: Weight is %d; set a positive share such as 1, or 0 for the default 1", field, t.Weight))
		}
		if t.Concurrency < 0 {
			errs = append(errs, fmt.Errorf("%s: Concurrency is %d; set the most attempts running at once, or 0 for no quota", field, t.Concurrency))
		}
		if t.Rate < 0 || math.IsNaN(t.Rate) || math.IsInf(t.Rate, 0) {
			errs = append(errs, fmt.Errorf("%s: Rate is %v; set the most starts per second, like 500, or 0 for no limit", field, t.Rate))
		}
	}
	return names, errs
}

// tenantName is the tenant f belongs to.
func (f Function) tenantName() string {
	if f.Tenant == "" {
		return DefaultTenant
	}
	return f.Tenant
}

// validate checks a function's adaptive settings; field names the function.
func (a AdaptiveConfig) validate(field string, concurrency int) []error {
	var errs []error
	if a.Min < 0 || concurrency >= 1 && a.Min > concurrency {
		errs = append(errs, fmt.Errorf("%s: Adaptive.Min is %d; set it between 1 and Concurrency (%d), or 0 for 1",
			field, a.Min, concurrency))
	}
	if a.LatencyFactor != 0 && !(a.LatencyFactor > 1) || math.IsInf(a.LatencyFactor, 0) {
		errs = append(errs, fmt.Errorf("%s: Adaptive.LatencyFactor is %v; set a factor above 1 such as 2, or 0 to turn the latency signal off",
			field, a.LatencyFactor))
	}
	return errs
}

// ExecutorFunc adapts a plain function to an Executor.
type ExecutorFunc func(ctx context.Context, w *Workload, timeout time.Duration) Outcome

// Execute calls f(ctx, w, timeout).
func (f ExecutorFunc) Execute(ctx context.Context, w *Workload, timeout time.Duration) Outcome {
	return f(ctx, w, timeout)
}
