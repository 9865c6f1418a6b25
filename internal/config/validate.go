package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	minWorkloadBytes = 1 << 10
	maxWorkloadBytes = 64 << 20
	maxTopicLen      = 249
	maxNameLen       = 64
)

// Validate checks a configuration after WithDefaults and returns nil or *Problems with
// every problem found. A Config built in code has no lines; Parse adds them.
func (c *Config) Validate() error {
	l := &problemList{}
	c.validate(l)
	return l.err("")
}

func (c *Config) validate(l *problemList) {
	c.validateKafka(l)
	c.validateNode(l)
	c.validateSecurity(l)
	c.validateDelay(l)
	c.validateDeadLetter(l)
	c.validateStormGuard(l)
	checkPositive(l, "checkpoint.interval", c.Checkpoint.Interval, "1s")
	if c.Checkpoint.MaxPending < 1 {
		l.add("checkpoint.max_pending", "%d is not allowed; use at least 1 (default %d)", c.Checkpoint.MaxPending, DefaultMaxPending)
	}
	names := c.validateFunctions(l)
	c.validateScheduling(l)
	c.validateTailers(l, names)
}

func (c *Config) validateKafka(l *problemList) {
	if len(c.Kafka.Brokers) == 0 {
		l.add("kafka.brokers", "empty; list at least one broker as host:port, like [%q]", DefaultBroker)
	}
	for i, b := range c.Kafka.Brokers {
		if msg := hostPortProblem(b, false); msg != "" {
			l.add(indexPath("kafka.brokers", i), "%q %s; write host:port, like %q", b, msg, DefaultBroker)
		}
	}
	if t := c.Kafka.TLS; t != nil {
		checkFile(l, "kafka.tls.ca_file", t.CAFile)
		checkFile(l, "kafka.tls.cert_file", t.CertFile)
		checkFile(l, "kafka.tls.key_file", t.KeyFile)
		if (t.CertFile == "") != (t.KeyFile == "") {
			l.add("kafka.tls", "cert_file and key_file go together; set both for a client certificate, or neither")
		}
	}
	if s := c.Kafka.SASL; s != nil {
		switch s.Mechanism {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		default:
			l.add("kafka.sasl.mechanism", "%q is not supported; use one of %s, %s, %s", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
		}
		if s.Username == "" {
			l.add("kafka.sasl.username", "missing; SASL needs a username")
		}
		if s.Password == "" {
			l.add("kafka.sasl.password", "missing; SASL needs a password (use ${VAR} to read it from the environment)")
		}
	}
	if strings.TrimSpace(c.Kafka.ClientID) == "" {
		l.add("kafka.client_id", "empty; name the client, like %q", DefaultClientID)
	}
	if st := c.Kafka.SessionTimeout.Std(); st < time.Second || st > 30*time.Minute {
		l.add("kafka.session_timeout", "%s is out of range; use 1s to 30m (brokers accept 6s to 30m by default), like 45s", c.Kafka.SessionTimeout)
	}
}

func (c *Config) validateNode(l *problemList) {
	n := c.Node
	if strings.TrimSpace(n.DataDir) == "" {
		l.add("node.data_dir", "empty; name a directory for checkpoints, like %q", DefaultDataDir)
	}
	if msg := hostPortProblem(n.GRPCListen, true); msg != "" {
		l.add("node.grpc_listen", "%q %s; write host:port, like %q (port 0 picks a free one)", n.GRPCListen, msg, DefaultGRPCListen)
	}
	if msg := hostPortProblem(n.HTTPListen, true); msg != "" {
		l.add("node.http_listen", "%q %s; write host:port, like %q (port 0 picks a free one)", n.HTTPListen, msg, DefaultHTTPListen)
	}
	switch {
	case n.MaxWorkloadBytes < minWorkloadBytes:
		l.add("node.max_workload_bytes", "%d is too small; use at least %d (1 KiB); the default is %d (1 MiB)", n.MaxWorkloadBytes, minWorkloadBytes, DefaultMaxWorkloadBytes)
	case n.MaxWorkloadBytes > maxWorkloadBytes:
		l.add("node.max_workload_bytes", "%d is larger than %d (64 MiB); whole workloads are held in memory, so keep them small (the default is 1 MiB)", n.MaxWorkloadBytes, maxWorkloadBytes)
	}
}

func (c *Config) validateDelay(l *problemList) {
	d := c.Delay
	if len(d.Rungs) == 0 {
		l.add("delay.rungs", "empty; list at least one rung, like [30s, 1m, 5m, 30m]")
	}
	if len(d.Rungs) > MaxRungs {
		l.add("delay.rungs", "%d rungs; at most %d are allowed (a few, each several times the one before, cover any delay)", len(d.Rungs), MaxRungs)
	}
	prefixOK := checkTopic(l, "delay.topic_prefix", d.TopicPrefix)
	for i, r := range d.Rungs {
		f := indexPath("delay.rungs", i)
		if !checkPositive(l, f, r, "30s") {
			continue
		}
		if i > 0 && r <= d.Rungs[i-1] {
			l.add(f, "%s is not longer than the rung before it (%s); list rungs in ascending order without repeats, like [30s, 1m, 5m, 30m]", r, d.Rungs[i-1])
		}
		if prefixOK {
			if msg := topicProblem(d.RungTopic(r)); msg != "" {
				l.add(f, "its topic %q %s", d.RungTopic(r), msg)
			}
		}
	}
	// The tolerance is judged against a valid ladder only: with bad rungs, the rungs are
	// the problem to report (and WithDefaults left the tolerance unset).
	example := DefaultTolerance(d.Rungs)
	if example <= 0 {
		example = DefaultTolerance(DefaultRungs())
	}
	switch {
	case d.Tolerance == Infinite:
		l.add("delay.tolerance", "infinite is not allowed here; use a duration below the smallest rung, like %s, or leave the key out for half the smallest rung", example)
	case d.Tolerance < 0:
		l.add("delay.tolerance", "%s is negative; use a duration below the smallest rung, like %s, or leave the key out for half the smallest rung", d.Tolerance, example)
	case ladderValid(d.Rungs) && d.Tolerance >= d.Rungs[0]:
		l.add("delay.tolerance", "%s is not below the smallest rung (%s); use a shorter tolerance, like %s", d.Tolerance, d.Rungs[0], example)
	}
	if d.Partitions < 1 {
		l.add("delay.partitions", "%d is not allowed; use at least 1 (default %d)", d.Partitions, DefaultDelayPartitions)
	}
	if d.Replication < BrokerDefaultReplication {
		l.add("delay.replication", "%d is not allowed; use a replication factor of at least 1, or -1 (or leave the key out) for the broker's default", d.Replication)
	}
	if d.MaxInFlight < 1 {
		l.add("delay.max_in_flight", "%d is not allowed; use at least 1 (default %d)", d.MaxInFlight, DefaultDelayMaxInFlight)
	}
}

func (c *Config) validateDeadLetter(l *problemList) {
	checkTopic(l, "dead_letter.topic", c.DeadLetter.Topic)
	const f = "dead_letter.min_retention"
	switch r := c.DeadLetter.MinRetention; {
	case r == Infinite:
	case r < 0:
		l.add(f, "%s is negative; use a positive duration like 168h, or infinite to keep dead letters for ever", r)
	case r == 0:
		l.add(f, "0 is not allowed; use a positive duration like 168h, or infinite to keep dead letters for ever")
	case r < Duration(time.Millisecond):
		l.add(f, "%s is below 1ms, the unit of retention.ms; use a duration like 168h, or infinite", r)
	}
}

func (c *Config) validateStormGuard(l *problemList) {
	g := c.StormGuard
	if checkPositive(l, "storm_guard.window", g.Window, "30s") && g.Window < Duration(MinStormWindow) {
		l.add("storm_guard.window", "%s is too short; use at least %s, like 30s", g.Window, Duration(MinStormWindow))
	}
	if g.MinOutcomes < 1 {
		l.add("storm_guard.min_outcomes", "%d is not allowed; use at least 1 (default %d)", g.MinOutcomes, DefaultStormMinOutcomes)
	}
	if !(g.Threshold > 0 && g.Threshold <= 1) { // also catches NaN
		l.add("storm_guard.threshold", "%v is not allowed; use a failure ratio above 0 and at most 1, like %v", g.Threshold, DefaultStormThreshold)
	}
	minOK := checkPositive(l, "storm_guard.retry_min", g.RetryMin, "1s")
	maxOK := checkPositive(l, "storm_guard.retry_max", g.RetryMax, "30s")
	if minOK && maxOK && g.RetryMax < g.RetryMin {
		l.add("storm_guard.retry_max", "%s is below retry_min (%s); use at least %s", g.RetryMax, g.RetryMin, g.RetryMin)
	}
}

// validateFunctions checks every function and returns the set of names.
func (c *Config) validateFunctions(l *problemList) map[string]bool {
	names := map[string]bool{}
	firstAt := map[string]int{}
	for i, f := range c.Functions {
		p := indexPath("functions", i)
		if checkName(l, p+".name", f.Name, "function") {
			if j, dup := firstAt[f.Name]; dup {
				l.add(p+".name", "%q is already the name of functions[%d]; function names must be unique", f.Name, j)
			} else {
				firstAt[f.Name] = i
			}
		}
		if f.Submit && f.Name != "" {
			if msg := topicProblem(IngestTopic(f.Name)); msg != "" {
				l.add(p+".submit", "the ingest topic %q %s; rename the function or leave submit off", IngestTopic(f.Name), msg)
			}
		}
		// A badly spelled name is reported once, here; tailers naming it are not reported again.
		names[f.Name] = f.Name != ""
		if f.URL != "" {
			if msg := urlProblem(f.URL); msg != "" {
				l.add(p+".url", "%q %s; write an http:// or https:// URL, or leave url out for SDK workers", redactURL(f.URL), msg)
			}
		}
		if f.Concurrency < 1 {
			l.add(p+".concurrency", "%d is not allowed; use at least 1 (default %d)", f.Concurrency, DefaultConcurrency)
		}
		if f.Rate < 0 || math.IsNaN(f.Rate) || math.IsInf(f.Rate, 0) {
			l.add(p+".rate", "%v is not allowed; use starts per second, or 0 for no limit", f.Rate)
		}
		checkPositive(l, p+".timeout", f.Timeout, "30s")
		if f.Retry.MaxAttempts < 1 {
			l.add(p+".retry.max_attempts", "%d is not allowed; use at least 1 (1 means no retries; default %d)", f.Retry.MaxAttempts, DefaultMaxAttempts)
		}
		if len(f.Retry.Backoff) == 0 {
			l.add(p+".retry.backoff", "empty; list at least one delay, like [30s, 1m, 5m, 30m]")
		}
		for j, b := range f.Retry.Backoff {
			if b == Infinite {
				l.add(indexPath(p+".retry.backoff", j), "infinite is not allowed here; use 0 or a positive duration like 30s")
			} else if b < 0 {
				l.add(indexPath(p+".retry.backoff", j), "%s is negative; use 0 or a positive duration like 30s", b)
			}
		}
	}
	return names
}

func (c *Config) validateTailers(l *problemList, functions map[string]bool) {
	firstName := map[string]int{}
	firstGroup := map[[2]string]int{}
	for i, t := range c.Tailers {
		p := indexPath("tailers", i)
		if checkName(l, p+".name", t.Name, "tailer") {
			if j, dup := firstName[t.Name]; dup {
				l.add(p+".name", "%q is already the name of tailers[%d]; tailer names must be unique", t.Name, j)
			} else {
				firstName[t.Name] = i
			}
		}
		if checkTopic(l, p+".topic", t.Topic) && t.Group != "" {
			key := [2]string{t.Topic, t.Group}
			if j, dup := firstGroup[key]; dup {
				l.add(p+".group", "%q already reads topic %q in tailers[%d]; two tailers in one group would split the partitions between them; give this one its own group", t.Group, t.Topic, j)
			} else {
				firstGroup[key] = i
			}
		}
		switch {
		case t.Function == "":
			l.add(p+".function", "missing; name the function to run (have: %s)", haveList(c.Functions))
		case !functions[t.Function]:
			l.add(p+".function", "%q is not a configured function (have: %s)", t.Function, haveList(c.Functions))
		}
		if strings.TrimSpace(t.Group) == "" && t.Name != "" {
			l.add(p+".group", "empty; name the consumer group, like %q", "kasync."+t.Name)
		}
		if t.Start != StartEarliest && t.Start != StartLatest {
			l.add(p+".start", "%q is not allowed; use %s or %s", t.Start, StartEarliest, StartLatest)
		}
		if t.OffsetsLost != OffsetsLostEarliest && t.OffsetsLost != OffsetsLostFail {
			l.add(p+".offsets_lost", "%q is not allowed; use %s (resume at the log start) or %s (stop the node)",
				t.OffsetsLost, OffsetsLostEarliest, OffsetsLostFail)
		}
		switch t.Ordering {
		case OrderingUnordered, OrderingKey, OrderingPartition:
		default:
			l.add(p+".ordering", "%q is not allowed; use %s, %s or %s", t.Ordering, OrderingUnordered, OrderingKey, OrderingPartition)
		}
		if t.Batch.MaxRecords < 1 {
			l.add(p+".batch.max_records", "%d is not allowed; use at least 1 (default %d)", t.Batch.MaxRecords, DefaultMaxRecords)
		}
		checkPositive(l, p+".batch.max_wait", t.Batch.MaxWait, "10ms")
		if t.MaxInFlight < 1 {
			l.add(p+".max_in_flight", "%d is not allowed; use at least 1 (default %d)", t.MaxInFlight, DefaultMaxInFlight)
		}
		checkPositive(l, p+".revoke_timeout", t.RevokeTimeout, "10s")
	}
}

// explicitZeros reports keys the source sets to 0 (or an empty list) where 0 is not
// allowed. It must run before WithDefaults, which would quietly replace the 0 with the
// default: a user who writes "concurrency: 0" means something, and it is not 64.
func (c *Config) explicitZeros(l *problemList) {
	set := func(field string) bool { _, ok := l.lines[field]; return ok }
	zeroInt := func(field string, v int) {
		if v == 0 && set(field) {
			l.add(field, "0 is not allowed; use at least 1, or leave the key out for the default")
		}
	}
	zeroFloat := func(field string, v float64, fix string) {
		if v == 0 && set(field) {
			l.add(field, "0 is not allowed; %s, or leave the key out for the default", fix)
		}
	}
	zeroDur := func(field string, v Duration, example string) {
		if v == 0 && set(field) {
			l.add(field, "0 is not allowed; use a positive duration like %s, or leave the key out for the default", example)
		}
	}
	emptyList := func(field string, n int, example string) {
		if n == 0 && set(field) {
			l.add(field, "empty; list at least one, like %s, or leave the key out for the default", example)
		}
	}
	emptyList("kafka.brokers", len(c.Kafka.Brokers), `["`+DefaultBroker+`"]`)
	zeroDur("kafka.session_timeout", c.Kafka.SessionTimeout, "45s")
	if c.Node.MaxWorkloadBytes == 0 && set("node.max_workload_bytes") {
		l.add("node.max_workload_bytes", "0 is not allowed; use at least %d (1 KiB), or leave the key out for 1 MiB", minWorkloadBytes)
	}
	emptyList("delay.rungs", len(c.Delay.Rungs), "[30s, 1m, 5m, 30m]")
	// 0 is a valid tolerance, but an unset one takes the default, and the two cannot be
	// told apart after decoding: refuse the 0 rather than silently replace it.
	if c.Delay.Tolerance == 0 && set("delay.tolerance") {
		l.add("delay.tolerance", "0 cannot be written here (an absent tolerance is half the smallest rung); to hold next to nothing in memory use a tiny duration like 1ms, or leave the key out for the default")
	}
	zeroInt("delay.partitions", int(c.Delay.Partitions))
	zeroInt("delay.max_in_flight", c.Delay.MaxInFlight)
	zeroDur("dead_letter.min_retention", c.DeadLetter.MinRetention, "168h (or infinite)")
	zeroDur("storm_guard.window", c.StormGuard.Window, "30s")
	zeroInt("storm_guard.min_outcomes", c.StormGuard.MinOutcomes)
	zeroFloat("storm_guard.threshold", c.StormGuard.Threshold, "use a failure ratio above 0 and at most 1, like 0.9")
	zeroDur("storm_guard.retry_min", c.StormGuard.RetryMin, "1s")
	zeroDur("storm_guard.retry_max", c.StormGuard.RetryMax, "30s")
	zeroDur("checkpoint.interval", c.Checkpoint.Interval, "1s")
	zeroInt("checkpoint.max_pending", c.Checkpoint.MaxPending)
	for i, f := range c.Functions {
		p := indexPath("functions", i)
		zeroInt(p+".concurrency", f.Concurrency)
		zeroDur(p+".timeout", f.Timeout, "30s")
		zeroInt(p+".retry.max_attempts", f.Retry.MaxAttempts)
		emptyList(p+".retry.backoff", len(f.Retry.Backoff), "[30s, 1m, 5m, 30m]")
	}
	for i, t := range c.Tailers {
		p := indexPath("tailers", i)
		zeroInt(p+".batch.max_records", t.Batch.MaxRecords)
		zeroDur(p+".batch.max_wait", t.Batch.MaxWait, "10ms")
		zeroInt(p+".max_in_flight", t.MaxInFlight)
		zeroDur(p+".revoke_timeout", t.RevokeTimeout, "10s")
	}
}

// checkPositive adds a problem unless d > 0 and reports whether d was fine.
func checkPositive(l *problemList, field string, d Duration, example string) bool {
	switch {
	case d == Infinite:
		l.add(field, "infinite is not allowed here; use a positive duration like %s", example)
	case d < 0:
		l.add(field, "%s is negative; use a positive duration like %s", d, example)
	case d == 0:
		l.add(field, "0 is not allowed; use a positive duration like %s", example)
	default:
		return true
	}
	return false
}

// checkName adds a problem unless name fits in topic names and metric labels.
func checkName(l *problemList, field, name, what string) bool {
	switch {
	case name == "":
		l.add(field, "missing; every %s needs a name", what)
	case len(name) > maxNameLen:
		l.add(field, "%q is longer than %d characters", name, maxNameLen)
	case strings.TrimLeft(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "":
		l.add(field, "%q may only use a-z, 0-9, _ and - (it appears in topic names and metric labels), like %q", name, suggestName(name))
	default:
		return true
	}
	return false
}

func suggestName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		case r == ' ', r == '.':
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "my-function"
	}
	return b.String()
}

// checkTopic adds a problem unless topic is a name Kafka accepts, and reports whether it was.
func checkTopic(l *problemList, field, topic string) bool {
	if topic == "" {
		l.add(field, "missing; name a Kafka topic")
		return false
	}
	if msg := topicProblem(topic); msg != "" {
		l.add(field, "%q %s", topic, msg)
		return false
	}
	return true
}

// topicProblem says why Kafka would reject topic, or "".
func topicProblem(topic string) string {
	switch {
	case topic == "." || topic == "..":
		return `is not a valid topic name ("." and ".." are reserved)`
	case len(topic) > maxTopicLen:
		return fmt.Sprintf("is %d characters long; Kafka allows at most %d", len(topic), maxTopicLen)
	}
	for _, r := range topic {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Sprintf("contains %q; Kafka topic names may only use a-z, A-Z, 0-9, '.', '_' and '-'", r)
		}
	}
	return ""
}

// hostPortProblem says why addr is not host:port, or "". A listen address may omit the
// host (":8080") and use port 0.
func hostPortProblem(addr string, listen bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "is not host:port"
	}
	if host == "" && !listen {
		return "has no host"
	}
	n, err := strconv.Atoi(port)
	lo := 1
	if listen {
		lo = 0
	}
	if err != nil || n < lo || n > 65535 {
		return fmt.Sprintf("has port %q, not a number from %d to 65535", port, lo)
	}
	return ""
}

func urlProblem(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "is not http or https"
	case u.Host == "":
		return "has no host"
	}
	return ""
}

func checkFile(l *problemList, field, path string) {
	if path == "" {
		return
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		l.add(field, "%q does not exist; name a PEM file that this node can read", path)
	case err != nil:
		l.add(field, "%q cannot be read: %v", path, err)
	case st.IsDir():
		l.add(field, "%q is a directory; name a PEM file", path)
	}
}

func haveList(fs []Function) string {
	var names []string
	for _, f := range fs {
		if f.Name != "" {
			names = append(names, f.Name)
		}
	}
	if len(names) == 0 {
		return "none; add one under functions:"
	}
	return strings.Join(names, ", ")
}
