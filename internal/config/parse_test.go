package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func noEnv(string) (string, bool) { return "", false }

// problemsOf parses in and returns its problems; it fails the test if there are none.
func problemsOf(t *testing.T, in string) *Problems {
	t.Helper()
	_, err := parse([]byte(in), "config.yaml", noEnv)
	require.Error(t, err)
	var p *Problems
	require.True(t, errors.As(err, &p), "want *Problems, got %T: %v", err, err)
	require.Equal(t, "config.yaml", p.Source)
	return p
}

func TestParseDesignExample(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/design.yaml")
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1:9092"}, c.Kafka.Brokers)
	require.Equal(t, "./kasync-data", c.Node.DataDir)
	require.Equal(t, "kasync.delay", c.Delay.TopicPrefix)
	require.Equal(t, []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute}, Durations(c.Delay.Rungs))
	require.Equal(t, "kasync.delay.30s", c.Delay.RungTopic(c.Delay.Rungs[0]))
	require.Equal(t, "kasync.delay.30m", c.Delay.RungTopic(c.Delay.Rungs[3]))
	require.Equal(t, "kasync.dead-letter", c.DeadLetter.Topic)
	require.Equal(t, []Function{{
		Name: "charge", URL: "http://127.0.0.1:9000/charge", Concurrency: 64, Rate: 500, Adaptive: Adaptive{Min: 1},
		Timeout: Duration(30 * time.Second), Retry: Retry{MaxAttempts: 5, Backoff: DefaultBackoff()},
	}}, c.Functions)
	require.Equal(t, []Tailer{{
		Name: "orders", Topic: "orders", Function: "charge", Group: "kasync.orders", Start: "earliest", OffsetsLost: "earliest",
		Ordering: "unordered", Batch: Batch{MaxRecords: 500, MaxWait: Duration(10 * time.Millisecond)},
		MaxInFlight: 10000, RevokeTimeout: Duration(10 * time.Second),
	}}, c.Tailers)
}

func TestParseAppliesDefaults(t *testing.T) {
	t.Parallel()
	c, err := parse([]byte("functions: [{name: f}]\ntailers: [{name: t, topic: in, function: f}]\n"), "min.yaml", noEnv)
	require.NoError(t, err)
	want := &Config{
		Kafka: Kafka{Brokers: []string{"127.0.0.1:9092"}, ClientID: "kasync", SessionTimeout: Duration(45 * time.Second)},
		Node:  Node{DataDir: "./kasync-data", GRPCListen: "127.0.0.1:7070", HTTPListen: "127.0.0.1:8080", MaxWorkloadBytes: 1 << 20},
		Delay: Delay{TopicPrefix: "kasync.delay", Rungs: DefaultRungs(), Tolerance: Duration(15 * time.Second),
			Partitions: 12, Replication: 0, MaxInFlight: 10000},
		DeadLetter: DeadLetter{Topic: "kasync.dead-letter", MinRetention: Duration(168 * time.Hour)},
		StormGuard: StormGuard{Window: Duration(30 * time.Second), MinOutcomes: 20, Threshold: 0.9,
			RetryMin: Duration(time.Second), RetryMax: Duration(30 * time.Second)},
		Checkpoint: Checkpoint{Interval: Duration(time.Second), MaxPending: 10000},
		Scheduler:  Scheduler{WorkerHeartbeatTimeout: Duration(15 * time.Second)},
		Functions: []Function{{Name: "f", Concurrency: 64, Timeout: Duration(30 * time.Second), Adaptive: Adaptive{Min: 1},
			Retry: Retry{MaxAttempts: 5, Backoff: DefaultBackoff()}}},
		Tailers: []Tailer{{Name: "t", Topic: "in", Function: "f", Group: "kasync.t", Start: "earliest", OffsetsLost: "earliest",
			Ordering: "unordered", Batch: Batch{MaxRecords: 500, MaxWait: Duration(10 * time.Millisecond)},
			MaxInFlight: 10000, RevokeTimeout: Duration(10 * time.Second)}},
	}
	require.Equal(t, want, c)
	// WithDefaults never overwrites what is set.
	require.Equal(t, want, c.Clone().WithDefaults())
}

func TestParseKeepsExplicitValues(t *testing.T) {
	t.Parallel()
	c, err := parse([]byte(`
delay: {rungs: [100ms, 1s]}
functions:
  - {name: f, concurrency: 3, rate: 2.5, timeout: 1500ms, retry: {max_attempts: 1, backoff: [0, 1h30m]}}
tailers:
  - {name: t, topic: in, function: f, group: g, start: latest, offsets_lost: fail, ordering: key, batch: {max_records: 7, max_wait: 1ms}, max_in_flight: 9, revoke_timeout: 2s}
`), "x.yaml", noEnv)
	require.NoError(t, err)
	require.Equal(t, []Duration{Duration(100 * time.Millisecond), Duration(time.Second)}, c.Delay.Rungs)
	f := c.Functions[0]
	require.Equal(t, Function{Name: "f", Concurrency: 3, Rate: 2.5, Timeout: Duration(1500 * time.Millisecond), Adaptive: Adaptive{Min: 1},
		Retry: Retry{MaxAttempts: 1, Backoff: []Duration{0, Duration(90 * time.Minute)}}}, f)
	require.Equal(t, time.Duration(0), f.Retry.BackoffFor(2))
	require.Equal(t, 90*time.Minute, f.Retry.BackoffFor(3))
	require.Equal(t, 90*time.Minute, f.Retry.BackoffFor(10), "the last backoff repeats")
	tl := c.Tailers[0]
	require.Equal(t, Tailer{Name: "t", Topic: "in", Function: "f", Group: "g", Start: "latest", OffsetsLost: "fail", Ordering: "key",
		Batch: Batch{MaxRecords: 7, MaxWait: Duration(time.Millisecond)}, MaxInFlight: 9, RevokeTimeout: Duration(2 * time.Second)}, tl)
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		in    string
		field string
		line  int
		msg   string
	}{
		{"unknown key with suggestion", "functions:\n  - name: f\n    concurency: 3\n",
			"functions[0].concurency", 3, `unknown key (did you mean "concurrency"?)`},
		{"unknown key case", "Kafka: {}\n", "Kafka", 1, `unknown key (did you mean "kafka"?)`},
		{"unknown nested key", "tailers:\n  - name: t\n    batch: {max_record: 5}\n",
			"tailers[0].batch.max_record", 3, `unknown key (did you mean "max_records"?)`},
		{"unknown key without suggestion", "node:\n  colour: blue\n", "node.colour", 2,
			`unknown key "colour" (known keys here: data_dir, grpc_listen, http_listen, max_workload_bytes, grpc_tls, grpc_auth, scheduler_tls, scheduler_token_file)`},
		{"duplicate key", "node:\n  data_dir: a\n  data_dir: b\n", "node.data_dir", 3, "duplicate key; it was already set on line 2"},
		{"not a number", "functions: [{name: f, concurrency: lots}]", "functions[0].concurrency", 1, `"lots" is not a whole number`},
		{"not a float", "functions: [{name: f, rate: fast}]", "functions[0].rate", 1, `"fast" is not a number`},
		{"bad duration", "functions:\n- name: f\n  timeout: 5x\n", "functions[0].timeout", 3, `"5x" is not a duration; write a number with a unit, like 30s, 1m or 10ms`},
		{"bare number duration", "checkpoint: {interval: 30}", "checkpoint.interval", 1, `"30" is not a duration`},
		{"duration as list", "checkpoint: {interval: [1s]}", "checkpoint.interval", 1, "want a duration like 30s, not a list"},
		{"list wanted", "delay: {rungs: 30s}", "delay.rungs", 1, `want a list like [a, b], not a single value ("30s")`},
		{"mapping wanted", "kafka: [a]", "kafka", 1, "want a mapping of keys (brokers, tls, sasl, client_id, session_timeout), not a list"},
		{"string wanted", "node: {data_dir: {a: b}}", "node.data_dir", 1, "want a string, not a mapping"},
		{"explicit zero concurrency", "functions:\n  - name: f\n    concurrency: 0\n", "functions[0].concurrency", 3, "0 is not allowed; use at least 1, or leave the key out for the default"},
		{"explicit zero timeout", "functions: [{name: f, timeout: 0}]", "functions[0].timeout", 1, "0 is not allowed; use a positive duration like 30s"},
		{"explicit zero max_attempts", "functions: [{name: f, retry: {max_attempts: 0}}]", "functions[0].retry.max_attempts", 1, "0 is not allowed"},
		{"explicit empty backoff", "functions: [{name: f, retry: {backoff: []}}]", "functions[0].retry.backoff", 1, "empty; list at least one"},
		{"explicit empty brokers", "kafka:\n  brokers: []\n", "kafka.brokers", 2, "empty; list at least one, like [\"127.0.0.1:9092\"]"},
		{"explicit empty rungs", "delay: {rungs: []}", "delay.rungs", 1, "empty"},
		{"explicit zero max_workload_bytes", "node: {max_workload_bytes: 0}", "node.max_workload_bytes", 1, "0 is not allowed; use at least 1024"},
		{"explicit zero interval", "checkpoint: {interval: 0s}", "checkpoint.interval", 1, "0 is not allowed"},
		{"explicit zero max_pending", "checkpoint: {max_pending: 0}", "checkpoint.max_pending", 1, "0 is not allowed"},
		{"explicit zero batch", "functions: [{name: f}]\ntailers: [{name: t, topic: x, function: f, batch: {max_records: 0}}]", "tailers[0].batch.max_records", 2, "0 is not allowed"},
		{"explicit zero max_wait", "functions: [{name: f}]\ntailers: [{name: t, topic: x, function: f, batch: {max_wait: 0ms}}]", "tailers[0].batch.max_wait", 2, "0 is not allowed"},
		{"explicit zero window", "functions: [{name: f}]\ntailers: [{name: t, topic: x, function: f, max_in_flight: 0}]", "tailers[0].max_in_flight", 2, "0 is not allowed"},
		{"explicit zero revoke", "functions: [{name: f}]\ntailers: [{name: t, topic: x, function: f, revoke_timeout: 0}]", "tailers[0].revoke_timeout", 2, "0 is not allowed"},
		{"validation has lines", "functions:\n  - name: charge\n  - name: email\ntailers:\n  - name: t\n    topic: x\n    function: chrage\n",
			"tailers[0].function", 7, `"chrage" is not a configured function (have: charge, email)`},
		{"defaulted field cites its entry", "functions: [{name: f}]\ntailers:\n  - name: t\n    function: f\n", "tailers[0].topic", 3, "missing; name a Kafka topic"},
		{"syntax error", "kafka:\n  brokers: [a\nnode: {}\n", "", 1, "invalid YAML: did not find expected ',' or ']'"},
		{"tab indent", "kafka:\n\tbrokers: []\n", "", 2, "(YAML indents with spaces, never tabs)"},
		{"empty file", "", "", 0, "the configuration is empty"},
		{"only comments", "# nothing here\n\n", "", 0, "the configuration is empty"},
		{"null document", "---\n", "", 0, "the configuration is empty"},
		{"several documents", "node: {}\n---\nnode: {}\n", "", 2, "a second YAML document starts here"},
		{"top level list", "- a\n- b\n", "", 1, "the top level must be a mapping of keys"},
		{"top level scalar", "hello\n", "", 1, "the top level must be a mapping of keys"},
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

func TestUnknownKeyErrorText(t *testing.T) {
	t.Parallel()
	in := "functions:\n  - name: charge\n    concurency: 3\n    timout: 5s\nkafak: {}\n"
	_, err := parse([]byte(in), "config.yaml", noEnv)
	require.EqualError(t, err, strings.Join([]string{
		`config.yaml:3: functions[0].concurency: unknown key (did you mean "concurrency"?)`,
		`config.yaml:4: functions[0].timout: unknown key (did you mean "timeout"?)`,
		`config.yaml:5: kafak: unknown key (did you mean "kafka"?)`,
	}, "\n"))
}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	in := `kafka:
  brokers: [localhost]
node:
  max_workload_bytes: 100
delay:
  rungs: [1m, 30s]
functions:
  - name: charge
    timeout: -5s
  - name: charge
tailers:
  - name: Orders
    topic: "orders!"
    function: chrage
    ordering: keyed
`
	p := problemsOf(t, in)
	require.Equal(t, []Problem{
		{Field: "kafka.brokers[0]", Line: 2, Message: `"localhost" is not host:port; write host:port, like "127.0.0.1:9092"`},
		{Field: "node.max_workload_bytes", Line: 4, Message: "100 is too small; use at least 1024 (1 KiB); the default is 1048576 (1 MiB)"},
		{Field: "delay.rungs[1]", Line: 6, Message: "30s is not longer than the rung before it (1m); list rungs in ascending order without repeats, like [30s, 1m, 5m, 30m]"},
		{Field: "functions[0].timeout", Line: 9, Message: "-5s is negative; use a positive duration like 30s"},
		{Field: "functions[1].name", Line: 10, Message: `"charge" is already the name of functions[0]; function names must be unique`},
		{Field: "tailers[0].name", Line: 12, Message: `"Orders" may only use a-z, 0-9, _ and - (it appears in topic names and metric labels), like "orders"`},
		{Field: "tailers[0].topic", Line: 13, Message: `"orders!" contains '!'; Kafka topic names may only use a-z, A-Z, 0-9, '.', '_' and '-'`},
		{Field: "tailers[0].function", Line: 14, Message: `"chrage" is not a configured function (have: charge, charge)`},
		{Field: "tailers[0].ordering", Line: 15, Message: `"keyed" is not allowed; use unordered, key or partition`},
	}, p.List)
	require.Contains(t, p.Error(), "config.yaml:9: functions[0].timeout: -5s is negative; use a positive duration like 30s\n")
	require.Len(t, strings.Split(p.Error(), "\n"), len(p.List))
}

func TestMergeKeysAndAliases(t *testing.T) {
	t.Parallel()
	in := `
x-defaults: &fn {concurrency: 2, timeout: 5s}
functions:
  - <<: *fn
    name: a
`
	// x-defaults is not a key kasync knows: anchors must live inside known keys.
	p := problemsOf(t, in)
	require.Equal(t, "x-defaults", p.List[0].Field)

	in = `
functions:
  - &fn {name: a, concurrency: 2, timeout: 5s}
  - <<: *fn
    name: b
tailers: [{name: t, topic: x, function: b}]
`
	c, err := parse([]byte(in), "merge.yaml", noEnv)
	require.NoError(t, err)
	require.Equal(t, 2, c.Functions[1].Concurrency)
	require.Equal(t, Duration(5*time.Second), c.Functions[1].Timeout)

	// An unknown key hidden behind an alias is still caught, by the strict decoder.
	in = `
functions:
  - &fn {name: a, concurency: 2}
  - <<: *fn
    name: b
`
	p = problemsOf(t, in)
	require.Equal(t, 3, p.List[0].Line)

	// Type errors behind an alias come from the decoder, reworded.
	p = problemsOf(t, "functions: &a [*a]\n")
	require.Equal(t, []Problem{{Field: "functions", Line: 1, Message: "want a mapping, not a list"}}, p.List)
	p = problemsOf(t, "x: &a [1]\nkafka: {brokers: *a}\n")
	require.Equal(t, "x", p.List[0].Field, "anchors outside known keys are unknown keys")
	p = problemsOf(t, "kafka:\n  client_id: &a {x: 1}\n  brokers: [*a]\n")
	require.Equal(t, Problem{Field: "kafka.client_id", Line: 2, Message: "want a string, not a mapping"}, p.List[0])
}

func TestLoadAndCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte("kafka: {brokers: [a:1, b:2]}\nfunctions: [{name: charge}, {name: email}]\ntailers: [{name: orders, topic: orders, function: charge}]\n"), 0o600))
	summary, err := Check(good)
	require.NoError(t, err)
	require.Equal(t, good+": ok\n  2 functions: charge, email\n  1 tailer: orders (orders -> charge)\n  brokers: a:1, b:2\n", summary)

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("functions: [{name: f, concurrency: -1}]\n"), 0o600))
	_, err = Check(bad)
	var p *Problems
	require.ErrorAs(t, err, &p)
	require.EqualError(t, err, bad+":1: functions[0].concurrency: -1 is not allowed; use at least 1 (default 64)")

	_, err = Check(filepath.Join(dir, "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "config: read ")
	require.False(t, errors.As(err, &p))
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := Demo()
	c.Kafka.SASL = &SASL{Mechanism: SASLScramSHA512, Username: "svc", Password: "hunter2"}
	c.Functions[0].URL = "https://user:pa55@example.com/f"
	r := c.Redacted()
	require.Equal(t, RedactedValue, r.Kafka.SASL.Password)
	require.Equal(t, "https://user:[redacted]@example.com/f", r.Functions[0].URL)
	// The original is untouched.
	require.Equal(t, "hunter2", c.Kafka.SASL.Password)
	require.Equal(t, "https://user:pa55@example.com/f", c.Functions[0].URL)

	for _, s := range []string{c.YAML(), c.String()} {
		require.NotContains(t, s, "hunter2")
		require.NotContains(t, s, "pa55")
		require.Contains(t, s, "password: '[redacted]'")
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/design.yaml")
	require.NoError(t, err)
	out := c.YAML()
	require.Contains(t, out, "  rungs:\n    - 30s\n    - 1m\n")
	back, err := parse([]byte(out), "round-trip.yaml", noEnv)
	require.NoError(t, err, out)
	require.Equal(t, c, back)
}

func TestDurationString(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0s", 10 * time.Millisecond: "10ms", 30 * time.Second: "30s", time.Minute: "1m",
		90 * time.Second: "1m30s", 2 * time.Hour: "2h", 90 * time.Minute: "1h30m", -5 * time.Second: "-5s",
	} {
		require.Equal(t, want, Duration(d).String())
		back, err := ParseDuration(want)
		require.NoError(t, err)
		require.Equal(t, Duration(d), back)
	}
}
