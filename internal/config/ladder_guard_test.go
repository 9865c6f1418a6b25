package config

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Tests of the delay ladder's tolerance, topics and reader window, the dead-letter
// retention and the failure-storm guard.

func TestLadderAndGuardDefaults(t *testing.T) {
	t.Parallel()
	c := validConfig()
	require.Equal(t, Delay{
		TopicPrefix: DefaultDelayTopicPrefix, Rungs: DefaultRungs(), Tolerance: Duration(15 * time.Second),
		Partitions: 12, Replication: 0, MaxInFlight: 10000,
	}, c.Delay)
	require.Equal(t, DeadLetter{Topic: DefaultDeadLetterTopic, MinRetention: Duration(7 * 24 * time.Hour)}, c.DeadLetter)
	require.Equal(t, StormGuard{
		Disabled: false, Window: Duration(30 * time.Second), MinOutcomes: 20, Threshold: 0.9,
		RetryMin: Duration(time.Second), RetryMax: Duration(30 * time.Second),
	}, c.StormGuard)
}

func TestDefaultToleranceFollowsTheRungs(t *testing.T) {
	t.Parallel()
	ms := func(n int) Duration { return Duration(time.Duration(n) * time.Millisecond) }
	for _, tc := range []struct {
		name  string
		rungs []Duration
		want  Duration
	}{
		{"default ladder", DefaultRungs(), Duration(15 * time.Second)},
		{"test ladder", []Duration{ms(100), ms(1000)}, ms(50)},
		{"odd nanoseconds round down", []Duration{3}, 1},
		{"one nanosecond", []Duration{1}, 0},
		{"empty", nil, 0},
		{"descending", []Duration{ms(2), ms(1)}, 0},
		{"repeated", []Duration{ms(1), ms(1)}, 0},
		{"zero rung", []Duration{0, ms(1)}, 0},
		{"negative rung", []Duration{ms(-1), ms(1)}, 0},
		{"too many", make([]Duration, MaxRungs+1), 0},
	} {
		require.Equal(t, tc.want, DefaultTolerance(tc.rungs), tc.name)
	}

	// WithDefaults derives the tolerance from the rungs as given, or as defaulted.
	c := (&Config{Delay: Delay{Rungs: []Duration{ms(200), ms(800)}}}).WithDefaults()
	require.Equal(t, ms(100), c.Delay.Tolerance)

	// With bad rungs the tolerance stays unset, and only the rungs are reported.
	c = validConfig()
	c.Delay.Rungs, c.Delay.Tolerance = []Duration{ms(2000), ms(1000)}, 0
	c.WithDefaults()
	require.Zero(t, c.Delay.Tolerance)
	var p *Problems
	require.ErrorAs(t, c.Validate(), &p)
	require.Equal(t, []string{"delay.rungs[1]"}, p.Fields())
}

func TestWithDefaultsKeepsLadderAndGuardValues(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.Delay = Delay{TopicPrefix: "p", Rungs: []Duration{Duration(time.Second)}, Tolerance: Duration(time.Millisecond),
		Partitions: 3, Replication: BrokerDefaultReplication, MaxInFlight: 7}
	c.DeadLetter.MinRetention = Infinite
	c.StormGuard = StormGuard{Disabled: true, Window: Duration(time.Minute), MinOutcomes: 1, Threshold: 0.5,
		RetryMin: Duration(time.Millisecond), RetryMax: Duration(time.Millisecond)}
	want := c.Clone()
	require.Equal(t, want, c.WithDefaults())
	require.NoError(t, c.Validate())
}

func TestValidateLadderAndGuardProblems(t *testing.T) {
	t.Parallel()
	d := func(s string) Duration { v, err := ParseDuration(s); require.NoError(t, err); return v }
	cases := []struct {
		name   string
		mutate func(c *Config)
		field  string
		msg    string
	}{
		// delay
		{"tolerance at the smallest rung", func(c *Config) { c.Delay.Tolerance = d("30s") },
			"delay.tolerance", "30s is not below the smallest rung (30s); use a shorter tolerance, like 15s"},
		{"tolerance above a custom rung", func(c *Config) { c.Delay.Rungs = []Duration{d("100ms"), d("1s")}; c.Delay.Tolerance = d("200ms") },
			"delay.tolerance", "200ms is not below the smallest rung (100ms); use a shorter tolerance, like 50ms"},
		{"tolerance negative", func(c *Config) { c.Delay.Tolerance = d("-1s") },
			"delay.tolerance", "-1s is negative; use a duration below the smallest rung, like 15s, or leave the key out for half the smallest rung"},
		{"tolerance infinite", func(c *Config) { c.Delay.Tolerance = Infinite },
			"delay.tolerance", "infinite is not allowed here; use a duration below the smallest rung, like 15s, or leave the key out for half the smallest rung"},
		{"tolerance not judged against bad rungs", func(c *Config) { c.Delay.Rungs = []Duration{d("1m"), d("1m")}; c.Delay.Tolerance = d("2m") },
			"delay.rungs[1]", "1m is not longer than the rung before it (1m); list rungs in ascending order without repeats, like [30s, 1m, 5m, 30m]"},
		{"partitions zero", func(c *Config) { c.Delay.Partitions = 0 }, "delay.partitions", "0 is not allowed; use at least 1 (default 12)"},
		{"partitions negative", func(c *Config) { c.Delay.Partitions = -1 }, "delay.partitions", "-1 is not allowed; use at least 1 (default 12)"},
		{"replication", func(c *Config) { c.Delay.Replication = -2 },
			"delay.replication", "-2 is not allowed; use a replication factor of at least 1, or -1 (or leave the key out) for the broker's default"},
		{"delay max in flight", func(c *Config) { c.Delay.MaxInFlight = 0 }, "delay.max_in_flight", "0 is not allowed; use at least 1 (default 10000)"},
		// dead letter
		{"retention negative", func(c *Config) { c.DeadLetter.MinRetention = d("-1h") },
			"dead_letter.min_retention", "-1h is negative; use a positive duration like 168h, or infinite to keep dead letters for ever"},
		{"retention zero", func(c *Config) { c.DeadLetter.MinRetention = 0 },
			"dead_letter.min_retention", "0 is not allowed; use a positive duration like 168h, or infinite to keep dead letters for ever"},
		{"retention below a millisecond", func(c *Config) { c.DeadLetter.MinRetention = d("500us") },
			"dead_letter.min_retention", "500us is below 1ms, the unit of retention.ms; use a duration like 168h, or infinite"},
		// storm guard
		{"window zero", func(c *Config) { c.StormGuard.Window = 0 }, "storm_guard.window", "0 is not allowed; use a positive duration like 30s"},
		{"window negative", func(c *Config) { c.StormGuard.Window = d("-30s") }, "storm_guard.window", "-30s is negative; use a positive duration like 30s"},
		{"window infinite", func(c *Config) { c.StormGuard.Window = Infinite }, "storm_guard.window", "infinite is not allowed here; use a positive duration like 30s"},
		{"window too short", func(c *Config) { c.StormGuard.Window = d("999us") }, "storm_guard.window", "999us is too short; use at least 1ms, like 30s"},
		{"min outcomes", func(c *Config) { c.StormGuard.MinOutcomes = -1 }, "storm_guard.min_outcomes", "-1 is not allowed; use at least 1 (default 20)"},
		{"threshold zero", func(c *Config) { c.StormGuard.Threshold = 0 },
			"storm_guard.threshold", "0 is not allowed; use a failure ratio above 0 and at most 1, like 0.9"},
		{"threshold above one", func(c *Config) { c.StormGuard.Threshold = 1.5 },
			"storm_guard.threshold", "1.5 is not allowed; use a failure ratio above 0 and at most 1, like 0.9"},
		{"threshold negative", func(c *Config) { c.StormGuard.Threshold = -0.1 },
			"storm_guard.threshold", "-0.1 is not allowed; use a failure ratio above 0 and at most 1, like 0.9"},
		{"threshold NaN", func(c *Config) { c.StormGuard.Threshold = math.NaN() },
			"storm_guard.threshold", "NaN is not allowed; use a failure ratio above 0 and at most 1, like 0.9"},
		{"retry min zero", func(c *Config) { c.StormGuard.RetryMin = 0 }, "storm_guard.retry_min", "0 is not allowed; use a positive duration like 1s"},
		{"retry max negative", func(c *Config) { c.StormGuard.RetryMax = d("-1s") }, "storm_guard.retry_max", "-1s is negative; use a positive duration like 30s"},
		{"retry max below min", func(c *Config) { c.StormGuard.RetryMin = d("1m") },
			"storm_guard.retry_max", "30s is below retry_min (1m); use at least 1m"},
		// infinite where it does not belong
		{"timeout infinite", func(c *Config) { c.Functions[0].Timeout = Infinite },
			"functions[0].timeout", "infinite is not allowed here; use a positive duration like 30s"},
		{"backoff infinite", func(c *Config) { c.Functions[0].Retry.Backoff = []Duration{Infinite} },
			"functions[0].retry.backoff[0]", "infinite is not allowed here; use 0 or a positive duration like 30s"},
		{"rung infinite", func(c *Config) { c.Delay.Rungs = []Duration{Infinite} },
			"delay.rungs[0]", "infinite is not allowed here; use a positive duration like 30s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.mutate(c)
			var p *Problems
			require.ErrorAs(t, c.Validate(), &p)
			require.Len(t, p.List, 1, "%v", p)
			require.Equal(t, Problem{Field: tc.field, Message: tc.msg}, p.List[0])
		})
	}
}

func TestValidLadderAndGuardAlternatives(t *testing.T) {
	t.Parallel()
	for _, mutate := range []func(c *Config){
		func(c *Config) { c.Delay.Tolerance = 0 },
		func(c *Config) { c.Delay.Tolerance = Duration(30*time.Second - 1) },
		func(c *Config) { c.Delay.Replication = -1 },
		func(c *Config) { c.Delay.Replication = 3 },
		func(c *Config) { c.Delay.Partitions, c.Delay.MaxInFlight = 1, 1 },
		func(c *Config) { c.DeadLetter.MinRetention = Infinite },
		func(c *Config) { c.DeadLetter.MinRetention = Duration(time.Millisecond) },
		func(c *Config) { c.StormGuard.Window = Duration(MinStormWindow) },
		func(c *Config) { c.StormGuard.Threshold, c.StormGuard.MinOutcomes = 1, 1 },
		func(c *Config) { c.StormGuard.Threshold = math.SmallestNonzeroFloat64 },
		func(c *Config) { c.StormGuard.RetryMax = c.StormGuard.RetryMin },
		// Disabled does not excuse bad values, but is itself fine.
		func(c *Config) { c.StormGuard.Disabled = true },
	} {
		c := validConfig()
		mutate(c)
		require.NoError(t, c.Validate())
	}
}

func TestParseLadderAndGuard(t *testing.T) {
	t.Parallel()
	c, err := parse([]byte(`
delay:
  rungs: [100ms, 1s]
  partitions: 3
  replication: -1
  max_in_flight: 50
dead_letter: {min_retention: Infinite}
storm_guard:
  disabled: true
  window: 5s
  min_outcomes: 4
  threshold: 0.5
  retry_min: 10ms
  retry_max: 1s
functions: [{name: f}]
tailers: [{name: t, topic: in, function: f}]
`), "x.yaml", noEnv)
	require.NoError(t, err)
	require.Equal(t, Delay{TopicPrefix: DefaultDelayTopicPrefix, Rungs: []Duration{Duration(100 * time.Millisecond), Duration(time.Second)},
		Tolerance: Duration(50 * time.Millisecond), Partitions: 3, Replication: -1, MaxInFlight: 50}, c.Delay)
	require.Equal(t, Infinite, c.DeadLetter.MinRetention)
	require.Equal(t, StormGuard{Disabled: true, Window: Duration(5 * time.Second), MinOutcomes: 4, Threshold: 0.5,
		RetryMin: Duration(10 * time.Millisecond), RetryMax: Duration(time.Second)}, c.StormGuard)

	// What `kasync config check` users see printed (YAML) parses back to the same.
	out := c.YAML()
	require.Contains(t, out, "  min_retention: infinite\n")
	require.Contains(t, out, "  tolerance: 50ms\n")
	require.Contains(t, out, "storm_guard:\n  disabled: true\n")
	back, err := parse([]byte(out), "round-trip.yaml", noEnv)
	require.NoError(t, err, out)
	require.Equal(t, c, back)

	// An explicit tolerance is kept.
	c, err = parse([]byte("delay: {tolerance: 1ms}\n"), "x.yaml", noEnv)
	require.NoError(t, err)
	require.Equal(t, Duration(time.Millisecond), c.Delay.Tolerance)
}

func TestParseLadderAndGuardProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		in    string
		field string
		line  int
		msg   string
	}{
		{"tolerance not below the smallest rung", "delay:\n  rungs: [30s, 1m]\n  tolerance: 30s\n",
			"delay.tolerance", 3, "30s is not below the smallest rung (30s); use a shorter tolerance, like 15s"},
		{"tolerance above a default rung", "delay:\n  tolerance: 1m\n", "delay.tolerance", 2, "1m is not below the smallest rung (30s)"},
		{"explicit zero tolerance", "delay: {tolerance: 0s}", "delay.tolerance", 1,
			"0 cannot be written here (an absent tolerance is half the smallest rung); to hold next to nothing in memory use a tiny duration like 1ms, or leave the key out for the default"},
		{"explicit zero partitions", "delay:\n  partitions: 0\n", "delay.partitions", 2, "0 is not allowed; use at least 1, or leave the key out for the default"},
		{"explicit zero delay window", "delay: {max_in_flight: 0}", "delay.max_in_flight", 1, "0 is not allowed; use at least 1"},
		{"replication out of range", "delay: {replication: 40000}", "delay.replication", 1,
			"40000 is out of range; use a whole number from -32768 to 32767"},
		{"partitions out of range", "delay: {partitions: 3000000000}", "delay.partitions", 1,
			"3000000000 is out of range; use a whole number from -2147483648 to 2147483647"},
		{"partitions not a number", "delay: {partitions: many}", "delay.partitions", 1, `"many" is not a whole number`},
		{"replication too low", "delay: {replication: -3}", "delay.replication", 1, "-3 is not allowed; use a replication factor of at least 1"},
		{"retention as Kafka writes it", "dead_letter:\n  min_retention: -1\n", "dead_letter.min_retention", 2,
			`"-1" is not a duration; write a number with a unit, like 30s, 1m or 10ms; for infinite retention (retention.ms=-1) write "infinite"`},
		{"explicit zero retention", "dead_letter: {min_retention: 0}", "dead_letter.min_retention", 1,
			"0 is not allowed; use a positive duration like 168h (or infinite), or leave the key out for the default"},
		{"infinite elsewhere", "checkpoint: {interval: infinite}", "checkpoint.interval", 1, "infinite is not allowed here; use a positive duration like 1s"},
		{"unknown guard key", "storm_guard:\n  windw: 10s\n", "storm_guard.windw", 2, `unknown key (did you mean "window"?)`},
		{"guard is a mapping", "storm_guard: on", "storm_guard", 1,
			"want a mapping of keys (disabled, window, min_outcomes, threshold, retry_min, retry_max), not a single value"},
		{"disabled not a bool", "storm_guard: {disabled: maybe}", "storm_guard.disabled", 1, `"maybe" is not true or false`},
		{"threshold not a number", "storm_guard: {threshold: high}", "storm_guard.threshold", 1, `"high" is not a number`},
		{"explicit zero window", "storm_guard: {window: 0s}", "storm_guard.window", 1, "0 is not allowed; use a positive duration like 30s, or leave the key out"},
		{"explicit zero min outcomes", "storm_guard: {min_outcomes: 0}", "storm_guard.min_outcomes", 1, "0 is not allowed"},
		{"explicit zero threshold", "storm_guard: {threshold: 0}", "storm_guard.threshold", 1,
			"0 is not allowed; use a failure ratio above 0 and at most 1, like 0.9, or leave the key out for the default"},
		{"threshold NaN", "storm_guard: {threshold: .nan}", "storm_guard.threshold", 1, "NaN is not allowed"},
		{"explicit zero retry min", "storm_guard: {retry_min: 0}", "storm_guard.retry_min", 1, "0 is not allowed"},
		{"explicit zero retry max", "storm_guard: {retry_max: 0}", "storm_guard.retry_max", 1, "0 is not allowed"},
		{"retry min above the default max", "storm_guard:\n  retry_min: 1m\n", "storm_guard.retry_max", 1,
			"30s is below retry_min (1m); use at least 1m"},
		{"window too short", "storm_guard:\n  window: 10us\n", "storm_guard.window", 2, "10us is too short; use at least 1ms, like 30s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := problemsOf(t, tc.in)
			require.Len(t, p.List, 1, "%v", p)
			require.Equal(t, tc.field, p.List[0].Field)
			require.Equal(t, tc.line, p.List[0].Line)
			require.Contains(t, p.List[0].Message, tc.msg)
		})
	}
}

func TestInfiniteDuration(t *testing.T) {
	t.Parallel()
	require.Equal(t, "infinite", Infinite.String())
	for _, s := range []string{"infinite", " Infinite ", "INFINITE", "-1ns"} {
		d, err := ParseDuration(s)
		require.NoError(t, err, s)
		require.Equal(t, Infinite, d, s)
	}
	require.Equal(t, time.Duration(-1), Infinite.Std(), "the same value as delaystreams.RetentionInfinite")
	v, err := Infinite.MarshalYAML()
	require.NoError(t, err)
	require.Equal(t, "infinite", v)
	_, err = ParseDuration("forever")
	require.EqualError(t, err, `"forever" is not a duration; write a number with a unit, like 30s, 1m or 10ms`)
}

// TestDemoYAMLNamesEveryKey: the demo is the documentation users copy, so every key of
// the configuration appears in it, if only in a comment.
func TestDemoYAMLNamesEveryKey(t *testing.T) {
	t.Parallel()
	seen := map[reflect.Type]bool{}
	var missing []string
	var visit func(t reflect.Type, path string)
	visit = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == durationType || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			if !strings.Contains(DemoYAML, name+":") {
				missing = append(missing, joinPath(path, name))
			}
			visit(f.Type, joinPath(path, name))
		}
	}
	visit(reflect.TypeFor[Config](), "")
	require.Empty(t, missing, "keys missing from DemoYAML")
}

func TestDemoHasLadderAndGuardDefaults(t *testing.T) {
	t.Parallel()
	c, err := parse([]byte(DemoYAML), "demo.yaml", noEnv)
	require.NoError(t, err)
	fresh := (&Config{}).WithDefaults()
	require.Equal(t, fresh.Delay, c.Delay)
	require.Equal(t, fresh.DeadLetter, c.DeadLetter)
	require.Equal(t, fresh.StormGuard, c.StormGuard)
}
