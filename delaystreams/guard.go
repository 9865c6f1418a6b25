package delaystreams

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of GuardConfig.
const (
	DefaultGuardWindow      = 30 * time.Second
	DefaultGuardMinOutcomes = 20
	DefaultGuardThreshold   = 0.9
)

// MinGuardWindow is the shortest GuardConfig.Window: the window is cut into
// guardBuckets slices of time, and a window much shorter than this cannot hold
// MinOutcomes outcomes of a real function anyway.
const MinGuardWindow = time.Millisecond

// guardBuckets is how many slices of time the sliding window is cut into. More buckets
// make the window's edge sharper (an outcome counts for between (1 − 1/guardBuckets) ×
// Window and Window) at the cost of a longer clear after a long silence; 10 keeps both
// small.
const guardBuckets = 10

// guardAction is what the tailer does while a guard is on; it is logged when the guard
// turns on so an operator reading the log knows why the stream stopped.
const guardAction = "source partitions pause; failing work retries in place until a probe succeeds"

// GuardConfig configures a Guard. Zero fields take defaults.
type GuardConfig struct {
	// Window is the sliding window of outcomes; default 30s, at least MinGuardWindow.
	Window time.Duration
	// MinOutcomes is the fewest outcomes in the window before the guard may trip, so
	// that a handful of failures after a quiet spell does not stop a stream; default 20.
	MinOutcomes int
	// Threshold is the failure ratio in (0, 1] that trips the guard; default 0.9.
	Threshold float64
	// Logger gets one line per state change; default slog.Default().
	Logger *slog.Logger
	// Registerer, when non-nil, registers the gauge kasync_storm_guard_active{function}
	// (1 on, 0 off).
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now. Tests inject a fake clock. It is called from
	// the goroutines that call Observe and Snapshot, so it must be safe for concurrent use.
	Now func() time.Time
}

// withDefaults returns c with its zero fields set to their defaults.
func (c GuardConfig) withDefaults() GuardConfig {
	if c.Window == 0 {
		c.Window = DefaultGuardWindow
	}
	if c.MinOutcomes == 0 {
		c.MinOutcomes = DefaultGuardMinOutcomes
	}
	if c.Threshold == 0 {
		c.Threshold = DefaultGuardThreshold
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem of c at once, each naming the field and the fix. Zero
// fields are valid: they take defaults.
func (c GuardConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("delaystreams: storm guard: "+format, args...))
	}
	if c.Window < 0 {
		bad("Window %s is negative; use a duration of at least %s, like 30s (0 takes the default)", c.Window, MinGuardWindow)
	} else if c.Window > 0 && c.Window < MinGuardWindow {
		bad("Window %s is too short; use at least %s, like 30s", c.Window, MinGuardWindow)
	}
	if c.MinOutcomes < 0 {
		bad("MinOutcomes %d is negative; use 1 or more, like 20 (0 takes the default)", c.MinOutcomes)
	}
	if math.IsNaN(c.Threshold) || c.Threshold < 0 || c.Threshold > 1 {
		bad("Threshold %v is out of range; use a ratio in (0, 1], like 0.9", c.Threshold)
	}
	return errors.Join(errs...)
}

// Guard is the failure-storm guard: for each function, a sliding window of the outcomes
// of its attempts. When, over the last Window, a function has at least MinOutcomes
// outcomes and failures/outcomes ≥ Threshold, its guard turns on: the caller (the
// tailer) stops feeding that function's failures to the delay ladder, pauses its source
// partitions and retries the failing work in place with backoff. When almost everything
// fails, copying the whole stream into delay topics costs more than stopping, and a
// stopped stream is what an operator can see and fix (Meta's lesson).
//
// The first success observed while on (a probe success) turns the guard off and clears
// the window, so it takes MinOutcomes fresh outcomes to trip again. Failures observed
// while on change nothing. Each change is logged once (Warn on, Info off) and shown in
// the gauge kasync_storm_guard_active{function}; repeats are never logged.
//
// Guard is a pure state machine: no goroutines and no I/O besides the log line and the
// gauge at a change; time comes from GuardConfig.Now. Observe is O(1) and the memory
// per function is fixed, whatever the rate: the window is a ring of guardBuckets time
// buckets, so an outcome counts for between 0.9 × Window and Window, never longer.
// Active is one map lookup and one atomic load, with no lock and no allocation, so it
// can be called per record.
//
// Create one with NewGuard. A Guard is safe for concurrent use. A nil *Guard is never
// active, so a caller can leave it out.
type Guard struct {
	window      time.Duration
	width       time.Duration // Window / guardBuckets
	minOutcomes int
	threshold   float64
	log         *slog.Logger
	now         func() time.Time
	origin      time.Time // bucket 0 starts here; Sub from it uses the monotonic clock
	gauge       *prometheus.GaugeVec

	// fns is copied on write: functions are few and fixed by config, so Active reads a
	// map that never changes under it, without a lock. mu serializes the writers.
	mu  sync.Mutex
	fns atomic.Pointer[map[string]*fnGuard]
}

// fnGuard is the guard of one function.
type fnGuard struct {
	active atomic.Bool // written under mu; read without it by Active and Observe's fast path

	mu                 sync.Mutex
	ring               [guardBuckets]guardBucket // bucket of epoch k is ring[k mod guardBuckets]
	head               int64                     // newest epoch the ring holds
	outcomes, failures int                       // sums over ring, kept so Observe is O(1)
	since              time.Time                 // last change, or first use
	trips              int64
	gauge              prometheus.Gauge // nil without a Registerer
}

type guardBucket struct{ outcomes, failures int }

// GuardState is one function's guard, for status views and tests.
type GuardState struct {
	Function string
	// Active reports whether the guard is on.
	Active bool
	// Since is when the guard last changed, or when the function was first observed.
	Since time.Time
	// Outcomes and Failures are the counts in the window now; while Active, those that
	// tripped the guard (the window is frozen while on, and cleared when it turns off).
	Outcomes, Failures int
	// Trips counts how many times the guard turned on.
	Trips int64
}

// NewGuard validates cfg (every problem at once) and returns a Guard; with a
// Registerer, it registers the gauge kasync_storm_guard_active{function}, and returns a
// registration error (such as prometheus.AlreadyRegisteredError) wrapped.
func NewGuard(cfg GuardConfig) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &Guard{
		window:      cfg.Window,
		width:       cfg.Window / guardBuckets,
		minOutcomes: cfg.MinOutcomes,
		threshold:   cfg.Threshold,
		log:         cfg.Logger,
		now:         cfg.Now,
	}
	g.origin = g.now()
	g.fns.Store(&map[string]*fnGuard{})
	if cfg.Registerer != nil {
		g.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kasync_storm_guard_active",
			Help: "1 while the failure-storm guard of a function is on: its source partitions are paused and failing work retries in place.",
		}, []string{"function"})
		if err := cfg.Registerer.Register(g.gauge); err != nil {
			return nil, fmt.Errorf("delaystreams: storm guard: register kasync_storm_guard_active: %w", err)
		}
	}
	return g, nil
}

// Active reports whether fn's guard is on. It takes no lock and allocates nothing.
func (g *Guard) Active(fn string) bool {
	if g == nil {
		return false
	}
	s := (*g.fns.Load())[fn]
	return s != nil && s.active.Load()
}

// Observe records the outcome of one attempt of fn: failed is true for a retriable
// failure, false for a success. Fatal outcomes are the event's fault, not the
// function's; callers do not report them. It returns whether fn's guard is on after
// this outcome.
func (g *Guard) Observe(fn string, failed bool) (active bool) {
	if g == nil {
		return false
	}
	s := g.state(fn)
	if failed && s.active.Load() {
		return true // a storm in progress: the common case then, so no lock
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return g.observeLocked(fn, s, g.now(), failed)
}

// ObserveSuccesses records n successful attempts of fn at once, exactly as n calls of
// Observe(fn, false) at one instant would, with one lock and one clock reading: the
// tailer reports the successes of a batch of results together.
func (g *Guard) ObserveSuccesses(fn string, n int) {
	if g == nil || n <= 0 {
		return
	}
	s := g.state(fn)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := g.now()
	for range n {
		g.observeLocked(fn, s, now, false)
	}
}

// observeLocked is Observe with s.mu held, at now.
func (g *Guard) observeLocked(fn string, s *fnGuard, now time.Time, failed bool) bool {
	if s.active.Load() {
		if failed {
			return true
		}
		g.turnOff(fn, s, now)
		return false
	}
	s.advance(g.epoch(now))
	b := &s.ring[ringSlot(s.head)]
	b.outcomes++
	s.outcomes++
	if failed {
		b.failures++
		s.failures++
	}
	if s.outcomes >= g.minOutcomes {
		if ratio := float64(s.failures) / float64(s.outcomes); ratio >= g.threshold {
			g.turnOn(fn, s, now, ratio)
			return true
		}
	}
	return false
}

// Snapshot returns the state of every function observed so far, sorted by function.
func (g *Guard) Snapshot() []GuardState {
	if g == nil {
		return nil
	}
	fns := *g.fns.Load()
	out := make([]GuardState, 0, len(fns))
	for fn, s := range fns {
		s.mu.Lock()
		if !s.active.Load() {
			s.advance(g.epoch(g.now())) // let old outcomes leave before they are shown
		}
		out = append(out, GuardState{
			Function: fn,
			Active:   s.active.Load(),
			Since:    s.since,
			Outcomes: s.outcomes,
			Failures: s.failures,
			Trips:    s.trips,
		})
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b GuardState) int { return strings.Compare(a.Function, b.Function) })
	return out
}

// state returns fn's guard, creating it on first use.
func (g *Guard) state(fn string) *fnGuard {
	if s := (*g.fns.Load())[fn]; s != nil {
		return s
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := *g.fns.Load()
	if s := old[fn]; s != nil {
		return s // another goroutine created it first
	}
	now := g.now()
	s := &fnGuard{head: g.epoch(now), since: now}
	if g.gauge != nil {
		s.gauge = g.gauge.WithLabelValues(fn)
		s.gauge.Set(0) // a function's gauge exists, at 0, from its first outcome
	}
	next := make(map[string]*fnGuard, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[fn] = s
	g.fns.Store(&next)
	return s
}

// turnOn switches s on; s.mu is held.
func (g *Guard) turnOn(fn string, s *fnGuard, now time.Time, ratio float64) {
	s.active.Store(true)
	s.since = now
	s.trips++
	if s.gauge != nil {
		s.gauge.Set(1)
	}
	// Logged under s.mu so that the lines of one function come out in the order of its
	// changes; changes are rare, so the lock is not held long in total.
	g.log.Warn("delaystreams: failure-storm guard on: "+guardAction,
		"function", fn, "ratio", ratio, "outcomes", s.outcomes, "failures", s.failures,
		"window", g.window, "trips", s.trips)
}

// turnOff switches s off after a probe success and clears its window; s.mu is held.
func (g *Guard) turnOff(fn string, s *fnGuard, now time.Time) {
	onFor := now.Sub(s.since)
	s.active.Store(false)
	s.since = now
	s.ring = [guardBuckets]guardBucket{}
	s.outcomes, s.failures = 0, 0
	s.head = g.epoch(now)
	if s.gauge != nil {
		s.gauge.Set(0)
	}
	g.log.Info("delaystreams: failure-storm guard off: a probe succeeded; source partitions resume",
		"function", fn, "on_for", onFor, "trips", s.trips)
}

// epoch is the number of the bucket that now falls in, counted from g.origin (floor
// division, so a clock before the origin still gets a consistent bucket).
func (g *Guard) epoch(now time.Time) int64 {
	d := int64(now.Sub(g.origin))
	w := int64(g.width)
	if d < 0 {
		return -((-d + w - 1) / w)
	}
	return d / w
}

// advance moves the ring forward to epoch e, emptying the buckets whose time has left
// the window; at most guardBuckets of them, so it is O(1) however long the silence. A
// clock that went back (e < head) leaves the ring as it is, and the outcome counts in
// the newest bucket.
func (s *fnGuard) advance(e int64) {
	if e <= s.head {
		return
	}
	n := min(e-s.head, guardBuckets)
	for k := e - n + 1; k <= e; k++ {
		b := &s.ring[ringSlot(k)]
		s.outcomes -= b.outcomes
		s.failures -= b.failures
		*b = guardBucket{}
	}
	s.head = e
}

func ringSlot(epoch int64) int {
	return int((epoch%guardBuckets + guardBuckets) % guardBuckets)
}
