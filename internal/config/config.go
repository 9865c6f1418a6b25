package config

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults. They are the values DESIGN.md documents; change them only together with it.
const (
	DefaultBroker   = "127.0.0.1:9092"
	DefaultClientID = "kasync"
	// DefaultSessionTimeout is Kafka's default consumer group session timeout.
	DefaultSessionTimeout   = 45 * time.Second
	DefaultDataDir          = "./kasync-data"
	DefaultGRPCListen       = "127.0.0.1:7070"
	DefaultHTTPListen       = "127.0.0.1:8080"
	DefaultMaxWorkloadBytes = 1 << 20
	DefaultDelayTopicPrefix = "kasync.delay"
	DefaultDeadLetterTopic  = "kasync.dead-letter"
	DefaultCheckpointEvery  = time.Second
	DefaultMaxPending       = 10000
	DefaultConcurrency      = 64
	DefaultTimeout          = 30 * time.Second
	DefaultMaxAttempts      = 5
	DefaultMaxRecords       = 500
	DefaultMaxWait          = 10 * time.Millisecond
	DefaultMaxInFlight      = 10000
	DefaultRevokeTimeout    = 10 * time.Second

	// Delay ladder: the topics kasync creates and each rung reader's window. The default
	// tolerance is not a constant: it is half the smallest rung (DefaultTolerance).
	DefaultDelayPartitions  = 12
	DefaultDelayMaxInFlight = 10000
	// DefaultDeadLetterMinRetention is 7 days, Kafka's own default retention.
	DefaultDeadLetterMinRetention = 7 * 24 * time.Hour

	// Failure-storm guard.
	DefaultStormWindow       = 30 * time.Second
	DefaultStormMinOutcomes  = 20
	DefaultStormThreshold    = 0.9
	DefaultStormRetryFloor   = time.Second      // storm_guard.retry_min
	DefaultStormRetryCeiling = 30 * time.Second // storm_guard.retry_max
	// MinStormWindow is the shortest storm_guard.window (delaystreams.MinGuardWindow).
	MinStormWindow = time.Millisecond

	// BrokerDefaultReplication, as delay.replication, creates topics with the broker's
	// default replication factor (0 means the same).
	BrokerDefaultReplication = -1

	// Infinite is the Duration written "infinite". Only dead_letter.min_retention accepts
	// it (retention.ms=-1); every other duration rejects it. It equals
	// delaystreams.RetentionInfinite (-1ns), so it converts with time.Duration(d).
	Infinite Duration = -1

	// Start positions for a group that has no checkpoint yet.
	StartEarliest = "earliest"
	StartLatest   = "latest"
	// Policies for a resume offset below the log start.
	OffsetsLostEarliest = "earliest"
	OffsetsLostFail     = "fail"

	// Ordering modes of a tailer (DESIGN.md "Ordering modes").
	OrderingUnordered = "unordered"
	OrderingKey       = "key"
	OrderingPartition = "partition"

	// SASL mechanisms kasync's Kafka client supports.
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"

	// RedactedValue replaces every secret in Redacted().
	RedactedValue = "[redacted]"

	// MaxRungs is the most delay rungs a configuration may list (delaystreams.MaxRungs).
	MaxRungs = 32
)

// DefaultRungs returns the default delay ladder: exactly 30s, 1m, 5m, 30m.
func DefaultRungs() []Duration {
	return []Duration{Duration(30 * time.Second), Duration(time.Minute), Duration(5 * time.Minute), Duration(30 * time.Minute)}
}

// DefaultBackoff returns the default retry backoff of a function (the same steps as the ladder).
func DefaultBackoff() []Duration { return DefaultRungs() }

// Config is the whole configuration of a kasync node, as read from YAML.
type Config struct {
	Kafka      Kafka      `yaml:"kafka"`
	Node       Node       `yaml:"node"`
	Delay      Delay      `yaml:"delay"`
	DeadLetter DeadLetter `yaml:"dead_letter"`
	StormGuard StormGuard `yaml:"storm_guard"`
	Checkpoint Checkpoint `yaml:"checkpoint"`
	Scheduler  Scheduler  `yaml:"scheduler"`
	Tenants    []Tenant   `yaml:"tenants,omitempty"`
	Functions  []Function `yaml:"functions"`
	Tailers    []Tailer   `yaml:"tailers"`
}

// Kafka says how to reach the cluster.
type Kafka struct {
	Brokers  []string `yaml:"brokers"`
	TLS      *TLS     `yaml:"tls,omitempty"`
	SASL     *SASL    `yaml:"sasl,omitempty"`
	ClientID string   `yaml:"client_id"`
	// SessionTimeout is how long a node's consumer groups wait for a node that stopped
	// without leaving (killed, machine lost) before its partitions are assigned again,
	// also to the same node restarted. A clean stop hands partitions over at once.
	// Default 45s; brokers accept 6s to 30m unless configured otherwise.
	SessionTimeout Duration `yaml:"session_timeout"`
}

// TLS enables TLS to the brokers. Empty files mean: system roots, no client certificate.
type TLS struct {
	CAFile   string `yaml:"ca_file,omitempty"`
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
}

// SASL authenticates to the brokers.
type SASL struct {
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// Node is what one kasync process listens on and where it keeps its state.
type Node struct {
	DataDir    string `yaml:"data_dir"`
	GRPCListen string `yaml:"grpc_listen"`
	HTTPListen string `yaml:"http_listen"`
	// MaxWorkloadBytes bounds one workload (key + value + headers); larger records are
	// dead-lettered with reason too-large.
	MaxWorkloadBytes int `yaml:"max_workload_bytes"`
	// GRPCTLS puts TLS (mutual with client_ca_file) on the gRPC listener. Default none.
	GRPCTLS *GRPCTLS `yaml:"grpc_tls,omitempty"`
	// GRPCAuth authenticates and authorizes callers of the gRPC API. Default none:
	// anyone who reaches grpc_listen may push and serve every function.
	GRPCAuth *GRPCAuth `yaml:"grpc_auth,omitempty"`
	// SchedulerTLS and SchedulerTokenFile are how a node without the scheduler role
	// connects to its scheduler (--scheduler ADDR). SchedulerTokenFile holds the token
	// alone and needs SchedulerTLS.
	SchedulerTLS       *SchedulerTLS `yaml:"scheduler_tls,omitempty"`
	SchedulerTokenFile string        `yaml:"scheduler_token_file,omitempty"`
}

// Delay configures the delay ladder.
type Delay struct {
	TopicPrefix string     `yaml:"topic_prefix"`
	Rungs       []Duration `yaml:"rungs"`
	// Tolerance: a retry due within this of now is held in memory by the delay reader
	// until due instead of taking another rung. Default: half the smallest rung
	// (DefaultTolerance). Must be ≥ 0 and below the smallest rung. In YAML it cannot be
	// written 0 (an absent key takes the default); write a tiny duration like 1ms instead.
	Tolerance Duration `yaml:"tolerance"`
	// Partitions and Replication of the rung and dead-letter topics kasync creates when
	// missing (existing topics keep theirs). Default partitions 12, at least 1;
	// replication 0 (the default) or -1 means the broker's default, otherwise at least 1.
	Partitions  int32 `yaml:"partitions"`
	Replication int16 `yaml:"replication"`
	// MaxInFlight bounds the records each rung's reader holds or runs at once (default
	// 10000, at least 1).
	MaxInFlight int `yaml:"max_in_flight"`
}

// RungTopic is the topic of one rung: "<topic_prefix>.<rung>", e.g. kasync.delay.30s.
func (d Delay) RungTopic(rung Duration) string { return d.TopicPrefix + "." + rung.String() }

// DefaultTolerance is the tolerance WithDefaults gives a ladder: half its smallest rung,
// or 0 when the rungs are not a valid ladder (Validate reports the rungs).
func DefaultTolerance(rungs []Duration) Duration {
	if !ladderValid(rungs) {
		return 0
	}
	return rungs[0] / 2
}

// ladderValid reports whether rungs are a ladder Validate accepts as to count, sign and
// order: 1 to MaxRungs rungs, each positive, strictly ascending (rungs[0] is the smallest).
func ladderValid(rungs []Duration) bool {
	if len(rungs) == 0 || len(rungs) > MaxRungs {
		return false
	}
	for i, r := range rungs {
		if r <= 0 || i > 0 && r <= rungs[i-1] {
			return false
		}
	}
	return true
}

// DeadLetter configures the dead-letter topic.
type DeadLetter struct {
	Topic string `yaml:"topic"`
	// MinRetention is the least retention.ms the dead-letter topic may have: kasync
	// refuses to start otherwise, and creates a missing topic with it. Default 168h (7
	// days, Kafka's default retention). "infinite" (Infinite) creates the topic with
	// retention.ms=-1 and accepts only that. Otherwise at least 1ms.
	MinRetention Duration `yaml:"min_retention"`
}

// StormGuard configures the failure-storm guard (one per node, per function state): when
// at least MinOutcomes outcomes of a function over the last Window fail at a ratio of at
// least Threshold, its source partitions pause and failing work retries in place, the
// n-th retry after min(RetryMin·2^(n−1), RetryMax), until the function recovers.
type StormGuard struct {
	Disabled    bool     `yaml:"disabled"`     // default false: the guard is on
	Window      Duration `yaml:"window"`       // default 30s, at least 1ms
	MinOutcomes int      `yaml:"min_outcomes"` // default 20, at least 1
	Threshold   float64  `yaml:"threshold"`    // default 0.9, in (0, 1]
	RetryMin    Duration `yaml:"retry_min"`    // default 1s, > 0: the first in-place retry's backoff
	RetryMax    Duration `yaml:"retry_max"`    // default 30s, ≥ retry_min
}

// Checkpoint configures how often checkpoints are persisted.
type Checkpoint struct {
	Interval Duration `yaml:"interval"`
	// MaxPending commits early once this many offsets completed since the last commit,
	// and is the most completions a tailer lets wait for a sync: it reads nothing more
	// until a write holding them has synced (at most one per interval). A crash re-runs
	// at most max_in_flight + max_pending records per tailer.
	MaxPending int `yaml:"max_pending"`
}

// Function is one registered function. Without URL, SDK workers (or an in-process
// registration) serve it.
type Function struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url,omitempty"`
	// TLS for an https url: a CA and a client certificate (mutual TLS).
	TLS *FunctionTLS `yaml:"tls,omitempty"`
	// Tenant is the tenants[] entry the function belongs to (default "default").
	Tenant      string   `yaml:"tenant,omitempty"`
	Concurrency int      `yaml:"concurrency"`
	Rate        float64  `yaml:"rate"` // starts per second; 0 means no limit
	Timeout     Duration `yaml:"timeout"`
	Adaptive    Adaptive `yaml:"adaptive"`
	Retry       Retry    `yaml:"retry"`
	// Submit accepts single tasks for this function (the Tasks gRPC API, kasync
	// submit): the node creates its ingest topic, IngestTopic(Name), and reads it with a
	// tailer of its own. Default false: each ingest topic costs a topic and a consumer
	// group per function.
	Submit bool `yaml:"submit,omitempty"`
}

// IngestTopicPrefix names the ingest topics of submitted tasks: <prefix>.<function>.
const IngestTopicPrefix = "kasync.fn"

// TaskStatusTopic is the compacted topic of task state transitions, keyed by task id.
const TaskStatusTopic = "kasync.tasks"

// IngestTopic is the topic submitted tasks of function go to when they run now.
func IngestTopic(function string) string { return IngestTopicPrefix + "." + function }

// Retry says how often and how late a failed workload runs again.
type Retry struct {
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the delay before attempt 2, 3, ...; the last entry repeats.
	Backoff []Duration `yaml:"backoff"`
}

// BackoffFor is the delay before the given attempt (2 for the first retry).
func (r Retry) BackoffFor(attempt int) time.Duration {
	if len(r.Backoff) == 0 {
		return 0
	}
	i := min(max(attempt-2, 0), len(r.Backoff)-1)
	return r.Backoff[i].Std()
}

// Tailer reads one topic and runs one function for each record.
type Tailer struct {
	Name     string `yaml:"name"`
	Topic    string `yaml:"topic"`
	Function string `yaml:"function"`
	Group    string `yaml:"group"`
	Start    string `yaml:"start"`
	// OffsetsLost is what the tailer does when a partition's resume offset is below
	// its log start (retention removed records before they ran): "earliest" (the
	// default) resumes at the log start, "fail" stops the node. Both log an error
	// and count the lost records.
	OffsetsLost string `yaml:"offsets_lost"`
	Ordering    string `yaml:"ordering"`
	// Priority of this tailer's workloads in their function's queue, higher first
	// (default 0); a record's kasync-priority header overrides it.
	Priority      int32    `yaml:"priority"`
	Batch         Batch    `yaml:"batch"`
	MaxInFlight   int      `yaml:"max_in_flight"`
	RevokeTimeout Duration `yaml:"revoke_timeout"`
	// TaskStatus records the task state of every event of this tailer in the task
	// status topic, for GetTask and kasync task (default false: it costs a produce per
	// state change of every event).
	TaskStatus bool `yaml:"task_status,omitempty"`
}

// Batch bounds one read from Kafka.
type Batch struct {
	MaxRecords int      `yaml:"max_records"`
	MaxWait    Duration `yaml:"max_wait"`
}

// WithDefaults fills every unset (zero) field with its default and returns c.
// It never overwrites a value that is set, so it is safe to call more than once.
func (c *Config) WithDefaults() *Config {
	if len(c.Kafka.Brokers) == 0 {
		c.Kafka.Brokers = []string{DefaultBroker}
	}
	setString(&c.Kafka.ClientID, DefaultClientID)
	setDuration(&c.Kafka.SessionTimeout, DefaultSessionTimeout)
	setString(&c.Node.DataDir, DefaultDataDir)
	setString(&c.Node.GRPCListen, DefaultGRPCListen)
	setString(&c.Node.HTTPListen, DefaultHTTPListen)
	setInt(&c.Node.MaxWorkloadBytes, DefaultMaxWorkloadBytes)
	setString(&c.Delay.TopicPrefix, DefaultDelayTopicPrefix)
	if len(c.Delay.Rungs) == 0 {
		c.Delay.Rungs = DefaultRungs()
	}
	// After the rungs: the default tolerance depends on them.
	setDuration(&c.Delay.Tolerance, DefaultTolerance(c.Delay.Rungs).Std())
	if c.Delay.Partitions == 0 {
		c.Delay.Partitions = DefaultDelayPartitions
	}
	// Replication 0 already means the broker's default: nothing to fill in.
	setInt(&c.Delay.MaxInFlight, DefaultDelayMaxInFlight)
	setString(&c.DeadLetter.Topic, DefaultDeadLetterTopic)
	setDuration(&c.DeadLetter.MinRetention, DefaultDeadLetterMinRetention)
	// Disabled's zero value, false, is the default: the guard is on.
	setDuration(&c.StormGuard.Window, DefaultStormWindow)
	setInt(&c.StormGuard.MinOutcomes, DefaultStormMinOutcomes)
	if c.StormGuard.Threshold == 0 {
		c.StormGuard.Threshold = DefaultStormThreshold
	}
	setDuration(&c.StormGuard.RetryMin, DefaultStormRetryFloor)
	setDuration(&c.StormGuard.RetryMax, DefaultStormRetryCeiling)
	c.schedulingDefaults()
	setDuration(&c.Checkpoint.Interval, DefaultCheckpointEvery)
	setInt(&c.Checkpoint.MaxPending, DefaultMaxPending)
	for i := range c.Functions {
		f := &c.Functions[i]
		setInt(&f.Concurrency, DefaultConcurrency)
		setDuration(&f.Timeout, DefaultTimeout)
		setInt(&f.Retry.MaxAttempts, DefaultMaxAttempts)
		if len(f.Retry.Backoff) == 0 {
			f.Retry.Backoff = DefaultBackoff()
		}
	}
	for i := range c.Tailers {
		t := &c.Tailers[i]
		if t.Name != "" {
			setString(&t.Group, "kasync."+t.Name)
		}
		setString(&t.Start, StartEarliest)
		setString(&t.OffsetsLost, OffsetsLostEarliest)
		setString(&t.Ordering, OrderingUnordered)
		setInt(&t.Batch.MaxRecords, DefaultMaxRecords)
		setDuration(&t.Batch.MaxWait, DefaultMaxWait)
		setInt(&t.MaxInFlight, DefaultMaxInFlight)
		setDuration(&t.RevokeTimeout, DefaultRevokeTimeout)
	}
	return c
}

func setString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDuration(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}

// Function returns the function with the given name.
func (c *Config) Function(name string) (Function, bool) {
	for _, f := range c.Functions {
		if f.Name == name {
			return f, true
		}
	}
	return Function{}, false
}

// Clone returns a deep copy of c: changing the copy never changes c.
func (c *Config) Clone() *Config {
	out := *c
	out.Kafka.Brokers = cloneSlice(c.Kafka.Brokers)
	if c.Kafka.TLS != nil {
		tls := *c.Kafka.TLS
		out.Kafka.TLS = &tls
	}
	if c.Kafka.SASL != nil {
		sasl := *c.Kafka.SASL
		out.Kafka.SASL = &sasl
	}
	out.Node.GRPCTLS = clonePtr(c.Node.GRPCTLS)
	out.Node.SchedulerTLS = clonePtr(c.Node.SchedulerTLS)
	if a := c.Node.GRPCAuth; a != nil {
		auth := *a
		auth.Identities = cloneSlice(a.Identities)
		for i := range auth.Identities {
			auth.Identities[i].Functions = cloneSlice(a.Identities[i].Functions)
		}
		out.Node.GRPCAuth = &auth
	}
	out.Delay.Rungs = cloneSlice(c.Delay.Rungs)
	out.Functions = cloneSlice(c.Functions)
	for i := range out.Functions {
		out.Functions[i].Retry.Backoff = cloneSlice(c.Functions[i].Retry.Backoff)
	}
	out.Tailers = cloneSlice(c.Tailers)
	return &out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

// Redacted returns a copy of c with every secret replaced by "[redacted]": the SASL
// password and the password of any URL with user info. Use it for anything printed or
// logged. gRPC tokens need no redaction: the config holds only the paths of their files.
func (c *Config) Redacted() *Config {
	out := c.Clone()
	if out.Kafka.SASL != nil && out.Kafka.SASL.Password != "" {
		out.Kafka.SASL.Password = RedactedValue
	}
	for i := range out.Functions {
		out.Functions[i].URL = redactURL(out.Functions[i].URL)
	}
	return out
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
		return strings.Replace(u.String(), "REDACTED", RedactedValue, 1)
	}
	return raw
}

// YAML renders the redacted configuration as YAML (what `kasync config check` prints).
func (c *Config) YAML() string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.Redacted()); err != nil {
		// Every field is a plain value; this cannot fail, but say so rather than hide it.
		return fmt.Sprintf("# config: cannot render as YAML: %v\n", err)
	}
	_ = enc.Close() // writing to a bytes.Buffer cannot fail
	return b.String()
}

// String is YAML(): printing a Config never shows a secret.
func (c *Config) String() string { return c.YAML() }

// Duration is a time.Duration written in YAML as a string with a unit: "30s", "1m",
// "10ms", "1h30m" (and "0"), or "infinite" (Infinite), which only
// dead_letter.min_retention accepts.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Durations converts ds to time.Durations.
func Durations(ds []Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Std()
	}
	return out
}

// String is the shortest form that parses back: 1m rather than 1m0s, 2h rather than 2h0m0s.
//
// It also names delay rung topics (delaystreams.RungTopic), so it must stay a legal
// topic-name fragment: "µs" is written "us", which ParseDuration reads too.
// Infinite is "infinite".
func (d Duration) String() string {
	if d == Infinite {
		return infiniteWord
	}
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	s = strings.Replace(s, "h0m", "h", 1)
	return strings.Replace(s, "µs", "us", 1)
}

// infiniteWord is how Infinite is written.
const infiniteWord = "infinite"

// ParseDuration parses a duration as written in the configuration: a number with a unit,
// or "infinite" (any case) for Infinite.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, infiniteWord) {
		return Infinite, nil
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write a number with a unit, like 30s, 1m or 10ms", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML decodes "30s"-style strings. A bare number is refused: the unit is
// never guessed.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration like 30s, not a %s", n.Line, kindName(n))}}
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = v
	return nil
}

// MarshalYAML writes the String form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
