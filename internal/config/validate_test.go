package config

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// validConfig is a valid two-function, two-tailer configuration built in code.
func validConfig() *Config {
	c := &Config{
		Functions: []Function{{Name: "charge"}, {Name: "email"}},
		Tailers: []Tailer{
			{Name: "orders", Topic: "orders", Function: "charge"},
			{Name: "signups", Topic: "signups", Function: "email"},
		},
	}
	return c.WithDefaults()
}

func TestValidConfigIsValid(t *testing.T) {
	t.Parallel()
	require.NoError(t, validConfig().Validate())
	require.NoError(t, Demo().Validate())
}

func TestValidateProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	existing := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(existing, []byte("pem"), 0o600))
	missing := filepath.Join(dir, "nope.pem")
	d := func(s string) Duration { v, err := ParseDuration(s); require.NoError(t, err); return v }

	cases := []struct {
		name   string
		mutate func(c *Config)
		field  string
		msg    string // the whole message, or a prefix ending in "..."
	}{
		// kafka
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers", `empty; list at least one broker as host:port, like ["127.0.0.1:9092"]`},
		{"broker without port", func(c *Config) { c.Kafka.Brokers = []string{"a:1", "localhost"} }, "kafka.brokers[1]", `"localhost" is not host:port; write host:port, like "127.0.0.1:9092"`},
		{"broker without host", func(c *Config) { c.Kafka.Brokers = []string{":9092"} }, "kafka.brokers[0]", `":9092" has no host; ...`},
		{"broker bad port", func(c *Config) { c.Kafka.Brokers = []string{"h:99999"} }, "kafka.brokers[0]", `"h:99999" has port "99999", not a number from 1 to 65535; ...`},
		{"broker port zero", func(c *Config) { c.Kafka.Brokers = []string{"h:0"} }, "kafka.brokers[0]", `"h:0" has port "0", not a number from 1 to 65535; ...`},
		{"tls file missing", func(c *Config) { c.Kafka.TLS = &TLS{CAFile: missing} }, "kafka.tls.ca_file", `"` + missing + `" does not exist; name a PEM file that this node can read`},
		{"tls file is dir", func(c *Config) { c.Kafka.TLS = &TLS{CAFile: dir} }, "kafka.tls.ca_file", `"` + dir + `" is a directory; name a PEM file`},
		{"tls cert without key", func(c *Config) { c.Kafka.TLS = &TLS{CAFile: existing, CertFile: existing} }, "kafka.tls", "cert_file and key_file go together; ..."},
		{"sasl mechanism", func(c *Config) { c.Kafka.SASL = &SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"} }, "kafka.sasl.mechanism", `"GSSAPI" is not supported; use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`},
		{"sasl lower case", func(c *Config) { c.Kafka.SASL = &SASL{Mechanism: "scram-sha-512", Username: "u", Password: "p"} }, "kafka.sasl.mechanism", `"scram-sha-512" is not supported; ...`},
		{"sasl no user", func(c *Config) { c.Kafka.SASL = &SASL{Mechanism: SASLPlain, Password: "p"} }, "kafka.sasl.username", "missing; SASL needs a username"},
		{"sasl no password", func(c *Config) { c.Kafka.SASL = &SASL{Mechanism: SASLPlain, Username: "u"} }, "kafka.sasl.password", "missing; SASL needs a password (use ${VAR} to read it from the environment)"},
		{"client id", func(c *Config) { c.Kafka.ClientID = " " }, "kafka.client_id", `empty; name the client, like "kasync"`},
		{"session timeout short", func(c *Config) { c.Kafka.SessionTimeout = d("500ms") }, "kafka.session_timeout", "500ms is out of range; use 1s to 30m (brokers accept 6s to 30m by default), like 45s"},
		{"session timeout long", func(c *Config) { c.Kafka.SessionTimeout = d("31m") }, "kafka.session_timeout", "31m is out of range; ..."},
		// node
		{"data dir", func(c *Config) { c.Node.DataDir = "" }, "node.data_dir", `empty; name a directory for checkpoints, like "./kasync-data"`},
		{"grpc listen", func(c *Config) { c.Node.GRPCListen = "7070" }, "node.grpc_listen", `"7070" is not host:port; write host:port, like "127.0.0.1:7070" (port 0 picks a free one)`},
		{"http listen port", func(c *Config) { c.Node.HTTPListen = "localhost:http" }, "node.http_listen", `"localhost:http" has port "http", not a number from 0 to 65535; ...`},
		{"workload too small", func(c *Config) { c.Node.MaxWorkloadBytes = 1023 }, "node.max_workload_bytes", "1023 is too small; use at least 1024 (1 KiB); the default is 1048576 (1 MiB)"},
		{"workload too large", func(c *Config) { c.Node.MaxWorkloadBytes = 64<<20 + 1 }, "node.max_workload_bytes", "67108865 is larger than 67108864 (64 MiB); ..."},
		// delay
		{"no rungs", func(c *Config) { c.Delay.Rungs = nil }, "delay.rungs", "empty; list at least one rung, like [30s, 1m, 5m, 30m]"},
		{"rungs descending", func(c *Config) { c.Delay.Rungs = []Duration{d("1m"), d("30s")} }, "delay.rungs[1]", "30s is not longer than the rung before it (1m); ..."},
		{"rungs repeated", func(c *Config) { c.Delay.Rungs = []Duration{d("1m"), d("1m")} }, "delay.rungs[1]", "1m is not longer than the rung before it (1m); ..."},
		{"rung negative", func(c *Config) { c.Delay.Rungs = []Duration{d("-30s")} }, "delay.rungs[0]", "-30s is negative; use a positive duration like 30s"},
		{"rung zero", func(c *Config) { c.Delay.Rungs = []Duration{0, d("1s")} }, "delay.rungs[0]", "0 is not allowed; use a positive duration like 30s"},
		{"prefix bad", func(c *Config) { c.Delay.TopicPrefix = "kasync delay" }, "delay.topic_prefix", `"kasync delay" contains ' '; Kafka topic names may only use a-z, A-Z, 0-9, '.', '_' and '-'`},
		{"rung topic fits", func(c *Config) { c.Delay.TopicPrefix = strings.Repeat("p", 245); c.Functions[0].Rate = -1 }, "functions[0].rate", "-1 is not allowed; ..."},
		{"rung topic too long", func(c *Config) { c.Delay.TopicPrefix = strings.Repeat("p", 246); c.Delay.Rungs = []Duration{d("30s")} }, "delay.rungs[0]", `its topic "` + strings.Repeat("p", 246) + `.30s" is 250 characters long; Kafka allows at most 249`},
		// dead letter, checkpoint
		{"dlq dotdot", func(c *Config) { c.DeadLetter.Topic = ".." }, "dead_letter.topic", `".." is not a valid topic name ("." and ".." are reserved)`},
		{"dlq too long", func(c *Config) { c.DeadLetter.Topic = strings.Repeat("d", 250) }, "dead_letter.topic", `"` + strings.Repeat("d", 250) + `" is 250 characters long; Kafka allows at most 249`},
		{"dlq empty", func(c *Config) { c.DeadLetter.Topic = "" }, "dead_letter.topic", "missing; name a Kafka topic"},
		{"checkpoint interval", func(c *Config) { c.Checkpoint.Interval = d("-1s") }, "checkpoint.interval", "-1s is negative; use a positive duration like 1s"},
		{"checkpoint pending", func(c *Config) { c.Checkpoint.MaxPending = -1 }, "checkpoint.max_pending", "-1 is not allowed; use at least 1 (default 10000)"},
		// functions
		{"function no name", func(c *Config) { c.Functions[1].Name = ""; c.Tailers = c.Tailers[:1] }, "functions[1].name", "missing; every function needs a name"},
		{"function bad name", func(c *Config) { c.Functions[1].Name = "Send Email"; c.Tailers[1].Function = "Send Email" }, "functions[1].name", `"Send Email" may only use a-z, 0-9, _ and - (it appears in topic names and metric labels), like "send-email"`},
		{"function long name", func(c *Config) { c.Functions[1].Name = strings.Repeat("f", 65); c.Tailers = c.Tailers[:1] }, "functions[1].name", `"` + strings.Repeat("f", 65) + `" is longer than 64 characters`},
		{"function duplicate", func(c *Config) { c.Functions[1].Name = "charge"; c.Tailers = c.Tailers[:1] }, "functions[1].name", `"charge" is already the name of functions[0]; function names must be unique`},
		{"url scheme", func(c *Config) { c.Functions[0].URL = "ftp://h/f" }, "functions[0].url", `"ftp://h/f" is not http or https; write an http:// or https:// URL, or leave url out for SDK workers`},
		{"url no host", func(c *Config) { c.Functions[0].URL = "http:///f" }, "functions[0].url", `"http:///f" has no host; ...`},
		{"url garbage", func(c *Config) { c.Functions[0].URL = "http://a b:x/" }, "functions[0].url", `"http://a b:x/" is not a URL; ...`},
		{"url password redacted", func(c *Config) { c.Functions[0].URL = "ftp://u:secret@h/f" }, "functions[0].url", `"ftp://u:[redacted]@h/f" is not http or https; ...`},
		{"concurrency", func(c *Config) { c.Functions[0].Concurrency = -1 }, "functions[0].concurrency", "-1 is not allowed; use at least 1 (default 64)"},
		{"rate negative", func(c *Config) { c.Functions[0].Rate = -1 }, "functions[0].rate", "-1 is not allowed; use starts per second, or 0 for no limit"},
		{"rate NaN", func(c *Config) { c.Functions[0].Rate = math.NaN() }, "functions[0].rate", "NaN is not allowed; ..."},
		{"timeout negative", func(c *Config) { c.Functions[0].Timeout = d("-5s") }, "functions[0].timeout", "-5s is negative; use a positive duration like 30s"},
		{"timeout zero", func(c *Config) { c.Functions[0].Timeout = 0 }, "functions[0].timeout", "0 is not allowed; use a positive duration like 30s"},
		{"max attempts", func(c *Config) { c.Functions[0].Retry.MaxAttempts = -2 }, "functions[0].retry.max_attempts", "-2 is not allowed; use at least 1 (1 means no retries; default 5)"},
		{"backoff empty", func(c *Config) { c.Functions[0].Retry.Backoff = nil }, "functions[0].retry.backoff", "empty; list at least one delay, like [30s, 1m, 5m, 30m]"},
		{"backoff negative", func(c *Config) { c.Functions[0].Retry.Backoff = []Duration{d("1s"), d("-1m")} }, "functions[0].retry.backoff[1]", "-1m is negative; use 0 or a positive duration like 30s"},
		// tailers
		{"tailer no name", func(c *Config) { c.Tailers[1].Name = "" }, "tailers[1].name", "missing; every tailer needs a name"},
		{"tailer bad name", func(c *Config) { c.Tailers[1].Name = "sign.ups" }, "tailers[1].name", `"sign.ups" may only use a-z, 0-9, _ and - (it appears in topic names and metric labels), like "sign-ups"`},
		{"tailer duplicate", func(c *Config) { c.Tailers[1].Name = "orders" }, "tailers[1].name", `"orders" is already the name of tailers[0]; tailer names must be unique`},
		{"tailer no topic", func(c *Config) { c.Tailers[1].Topic = "" }, "tailers[1].topic", "missing; name a Kafka topic"},
		{"tailer bad topic", func(c *Config) { c.Tailers[1].Topic = "." }, "tailers[1].topic", `"." is not a valid topic name ("." and ".." are reserved)`},
		{"tailer no function", func(c *Config) { c.Tailers[0].Function = "" }, "tailers[0].function", "missing; name the function to run (have: charge, email)"},
		{"tailer unknown function", func(c *Config) { c.Tailers[0].Function = "chrage" }, "tailers[0].function", `"chrage" is not a configured function (have: charge, email)`},
		{"tailer function with none", func(c *Config) { c.Functions = nil; c.Tailers = c.Tailers[:1] }, "tailers[0].function", `"charge" is not a configured function (have: none; add one under functions:)`},
		{"tailer shared group", func(c *Config) { c.Tailers[1].Topic = "orders"; c.Tailers[1].Group = "kasync.orders" }, "tailers[1].group", `"kasync.orders" already reads topic "orders" in tailers[0]; ...`},
		{"tailer empty group", func(c *Config) { c.Tailers[1].Group = "" }, "tailers[1].group", `empty; name the consumer group, like "kasync.signups"`},
		{"tailer start", func(c *Config) { c.Tailers[0].Start = "beginning" }, "tailers[0].start", `"beginning" is not allowed; use earliest or latest`},
		{"tailer offsets_lost", func(c *Config) { c.Tailers[0].OffsetsLost = "latest" }, "tailers[0].offsets_lost", `"latest" is not allowed; use earliest (resume at the log start) or fail (stop the node)`},
		{"tailer ordering", func(c *Config) { c.Tailers[0].Ordering = "keyed" }, "tailers[0].ordering", `"keyed" is not allowed; use unordered, key or partition`},
		{"tailer batch", func(c *Config) { c.Tailers[0].Batch.MaxRecords = -1 }, "tailers[0].batch.max_records", "-1 is not allowed; use at least 1 (default 500)"},
		{"tailer max wait", func(c *Config) { c.Tailers[0].Batch.MaxWait = d("-1ms") }, "tailers[0].batch.max_wait", "-1ms is negative; use a positive duration like 10ms"},
		{"tailer window", func(c *Config) { c.Tailers[0].MaxInFlight = -5 }, "tailers[0].max_in_flight", "-5 is not allowed; use at least 1 (default 10000)"},
		{"tailer revoke", func(c *Config) { c.Tailers[0].RevokeTimeout = d("-10s") }, "tailers[0].revoke_timeout", "-10s is negative; use a positive duration like 10s"},
		// scheduler, tenants, adaptive limits, HTTP TLS
		{"max concurrency", func(c *Config) { c.Scheduler.MaxConcurrency = -1 }, "scheduler.max_concurrency", "-1 is not allowed; use a positive bound, or 0 for none"},
		{"heartbeat timeout", func(c *Config) { c.Scheduler.WorkerHeartbeatTimeout = d("1ms") }, "scheduler.worker_heartbeat_timeout", "1ms is too short; use at least 10ms, like 15s"},
		{"tenant no name", func(c *Config) { c.Tenants = []Tenant{{Weight: 1}} }, "tenants[0].name", "missing; every tenant needs a name"},
		{"tenant duplicate", func(c *Config) { c.Tenants = []Tenant{{Name: "a", Weight: 1}, {Name: "a", Weight: 2}} }, "tenants[1].name", `"a" is already the name of tenants[0]; tenant names must be unique`},
		{"tenant weight", func(c *Config) { c.Tenants = []Tenant{{Name: "a", Weight: 5000}} }, "tenants[0].weight", "5000 is not allowed; use 1 to 1000 (default 1)"},
		{"tenant quota", func(c *Config) { c.Tenants = []Tenant{{Name: "a", Weight: 1, Concurrency: -2}} }, "tenants[0].concurrency", "-2 is not allowed; use a positive quota, or 0 for none"},
		{"tenant rate", func(c *Config) { c.Tenants = []Tenant{{Name: "a", Weight: 1, Rate: math.Inf(1)}} }, "tenants[0].rate", "+Inf is not allowed; use starts per second, or 0 for no quota"},
		{"function tenant", func(c *Config) { c.Functions[1].Tenant = "marketing" }, "functions[1].tenant", `"marketing" is not in tenants; add it there (name, weight) or leave tenant out for "default"`},
		{"adaptive min", func(c *Config) { c.Functions[0].Adaptive.Min = 65 }, "functions[0].adaptive.min", "65 is not allowed; use 1 to the function's concurrency (64)"},
		{"adaptive latency", func(c *Config) { c.Functions[0].Adaptive.LatencyFactor = 0.5 }, "functions[0].adaptive.latency_factor", "0.5 is not allowed; use a factor above 1 like 2, or 0 to leave latency out"},
		{"tls without https", func(c *Config) { c.Functions[0].URL = "http://x/"; c.Functions[0].TLS = &FunctionTLS{} }, "functions[0].tls", "is set but url is not https://; use an https url, or remove tls"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.mutate(c)
			err := c.Validate()
			var p *Problems
			require.True(t, errors.As(err, &p), "want *Problems, got %v", err)
			require.Len(t, p.List, 1, "%v", p)
			got := p.List[0]
			require.Equal(t, tc.field, got.Field)
			require.Zero(t, got.Line, "a Config built in code has no lines")
			if prefix, ok := strings.CutSuffix(tc.msg, "..."); ok {
				require.True(t, strings.HasPrefix(got.Message, prefix), "message %q does not start with %q", got.Message, prefix)
			} else {
				require.Equal(t, tc.msg, got.Message)
			}
			require.Equal(t, tc.field+": "+got.Message, err.Error(), "no source, no line: just field and message")
		})
	}
}

func TestValidAlternatives(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pem := filepath.Join(dir, "x.pem")
	require.NoError(t, os.WriteFile(pem, []byte("pem"), 0o600))
	c := validConfig()
	c.Kafka.Brokers = []string{"[::1]:9092", "kafka-0.kafka.svc:19092"}
	c.Kafka.TLS = &TLS{CAFile: pem, CertFile: pem, KeyFile: pem}
	c.Kafka.SASL = &SASL{Mechanism: SASLScramSHA256, Username: "u", Password: "p"}
	c.Node.GRPCListen = ":0"
	c.Node.HTTPListen = "0.0.0.0:80"
	c.Node.MaxWorkloadBytes = 64 << 20
	c.Delay.Rungs = []Duration{Duration(time.Millisecond)}
	c.Delay.Tolerance = 0 // below the new smallest rung (a tolerance of 0 is valid in code)
	c.Delay.Replication = BrokerDefaultReplication
	c.DeadLetter.MinRetention = Infinite
	c.StormGuard.Disabled = true
	c.StormGuard.Threshold = 1
	c.StormGuard.Window = Duration(MinStormWindow)
	c.StormGuard.RetryMin, c.StormGuard.RetryMax = Duration(time.Second), Duration(time.Second)
	c.Functions[0].URL = "https://fn.example.com:8443/charge?x=1"
	c.Functions[0].Rate = 0.5
	c.Functions[0].Retry.Backoff = []Duration{0}
	c.Functions[0].TLS = &FunctionTLS{CAFile: pem, CertFile: pem, KeyFile: pem}
	c.Functions[0].Tenant = "payments"
	c.Functions[0].Adaptive = Adaptive{Min: 64, LatencyFactor: 2}
	c.Functions[1].Tenant = DefaultTenant // need not be listed
	c.Functions[1].Adaptive.Disabled = true
	c.Tenants = []Tenant{{Name: "payments", Weight: 1000, Concurrency: 10, Rate: 0.5}}
	c.Scheduler = Scheduler{MaxConcurrency: 16, WorkerHeartbeatTimeout: Duration(MinWorkerHeartbeatTimeout)}
	c.Tailers[0].Start, c.Tailers[0].Ordering = StartLatest, OrderingPartition
	c.Tailers[1].Ordering = OrderingKey
	c.Tailers[1].Topic = c.Tailers[0].Topic // same topic in another group is fine
	require.NoError(t, c.Validate())
}

func TestProblemsErrorFormat(t *testing.T) {
	t.Parallel()
	p := &Problems{Source: "c.yaml", List: []Problem{
		{Message: "the configuration is empty"},
		{Field: "a", Line: 3, Message: "m1"},
		{Field: "b.c", Message: "m2"},
	}}
	require.Equal(t, "c.yaml: the configuration is empty\nc.yaml:3: a: m1\nc.yaml: b.c: m2", p.Error())
	p.Source = ""
	require.Equal(t, "the configuration is empty\nline 3: a: m1\nb.c: m2", p.Error())
	require.Equal(t, []string{"", "a", "b.c"}, p.Fields())
}

func TestValidateReportsEverythingInCodeOrder(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.Kafka.Brokers = nil
	c.Functions[0].Concurrency = -1
	c.Tailers[1].Function = "nope"
	c.Tailers[1].Start = "now"
	var p *Problems
	require.ErrorAs(t, c.Validate(), &p)
	require.Equal(t, []string{"kafka.brokers", "functions[0].concurrency", "tailers[1].function", "tailers[1].start"}, p.Fields())
}

func TestEditDistanceAndClosest(t *testing.T) {
	t.Parallel()
	require.Equal(t, 0, editDistance("abc", "abc"))
	require.Equal(t, 1, editDistance("concurency", "concurrency"))
	require.Equal(t, 3, editDistance("", "abc"))
	require.Equal(t, 2, editDistance("ab", "ba"))
	require.Equal(t, "max_in_flight", closest("max_inflight", yamlKeys(reflect.TypeFor[Tailer]())))
	require.Equal(t, "", closest("colour", yamlKeys(reflect.TypeFor[Tailer]())))
}

func TestTooManyRungs(t *testing.T) {
	t.Parallel()
	c := Demo()
	c.Delay.Rungs = nil
	for i := range MaxRungs + 1 {
		c.Delay.Rungs = append(c.Delay.Rungs, Duration(time.Duration(i+1)*time.Second))
	}
	err := c.Validate()
	require.ErrorContains(t, err, "delay.rungs: 33 rungs; at most 32")
}
