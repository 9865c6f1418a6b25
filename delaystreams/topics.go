package delaystreams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kasync/kasync/internal/backoff"
	"github.com/kasync/kasync/internal/config"
)

// Defaults of a TopicPlan.
const (
	DefaultTopicPartitions = 12
	// DefaultMinRetention is the least retention of a rung topic, unless ten times its
	// rung is longer.
	DefaultMinRetention = 7 * 24 * time.Hour
	// DefaultDeadLetterMinRetention is the least retention of the dead-letter topic.
	DefaultDeadLetterMinRetention = 14 * 24 * time.Hour
	// RetentionInfinite, as DeadLetterMinRetention, creates the dead-letter topic with
	// retention.ms=-1 and accepts only that.
	RetentionInfinite time.Duration = -1
)

// rungRetentionFactor: a rung topic keeps records at least this many rungs long, so a
// reader that falls behind (a node down for a while, a long backlog) still finds them.
const rungRetentionFactor = 10

// maxTopicRung bounds a rung: it keeps rung × rungRetentionFactor far from overflowing, and a
// longer fixed wait is a chain of shorter rungs.
const maxTopicRung = 365 * 24 * time.Hour

// maxTopicNameLen is Kafka's limit on a topic name.
const maxTopicNameLen = 249

// Topic configs kasync sets and checks.
const (
	cfgCleanupPolicy  = "cleanup.policy"
	cfgRetentionMs    = "retention.ms"
	cfgRetentionBytes = "retention.bytes"
	cfgTimestampType  = "message.timestamp.type"
	logAppendTime     = "LogAppendTime"
)

// topicSettleTimeout bounds how long EnsureTopics waits for topics it (or another node)
// just created to show in metadata and DescribeConfigs: a real cluster answers
// CreateTopics before every broker knows the topic.
const topicSettleTimeout = 30 * time.Second

// RungTopic names the topic of a rung: prefix + "." + the rung in its shortest exact
// form ("30s", "1m", "1h30m", "250ms", "1.5s"; never "1m0s"). time.ParseDuration reads
// the suffix back as the rung. It is the same form as config.Duration.String, but for
// rungs with an hour and seconds but no minutes ("1h30s", where config writes "1h0m30s").
//
// The duration is written as in the configuration (config.Duration), so that
// `kasync config check` validates exactly the names used here.
func RungTopic(prefix string, rung time.Duration) string {
	return prefix + "." + durationName(rung)
}

// TopicPlan says what kasync needs from its topics.
type TopicPlan struct {
	Prefix     string          // rung topics are RungTopic(Prefix, rung)
	Rungs      []time.Duration // each a positive whole number of milliseconds
	DeadLetter string          // the dead-letter topic
	// Partitions is the partition count of topics kasync creates (≥ 1; 0 means
	// DefaultTopicPartitions). Existing topics keep theirs.
	Partitions int32
	// Replication is the replication factor of topics kasync creates; -1 (or 0) means
	// the broker's default.
	Replication int16
	// MinRetention is the least retention.ms a rung topic may have: a retry record must
	// never be deleted while it waits. A rung needs max(MinRetention, 10 × the rung);
	// 0 means DefaultMinRetention (7 days). Topics kasync creates get exactly that.
	MinRetention time.Duration
	// DeadLetterMinRetention is the least retention.ms of the dead-letter topic; 0 means
	// DefaultDeadLetterMinRetention (14 days). An existing topic with infinite retention
	// (-1) always fits. RetentionInfinite creates the topic with infinite retention and
	// accepts nothing less.
	DeadLetterMinRetention time.Duration
}

// withDefaults returns p with its zero fields set to their defaults.
func (p TopicPlan) withDefaults() TopicPlan {
	if p.Partitions == 0 {
		p.Partitions = DefaultTopicPartitions
	}
	if p.Replication == 0 {
		p.Replication = -1
	}
	if p.MinRetention == 0 {
		p.MinRetention = DefaultMinRetention
	}
	if p.DeadLetterMinRetention == 0 {
		p.DeadLetterMinRetention = DefaultDeadLetterMinRetention
	}
	p.Rungs = slices.Clone(p.Rungs)
	return p
}

// validate reports every problem of a defaulted plan at once, each naming the field and
// the fix.
func (p TopicPlan) validate() error {
	var msgs []string
	add := func(format string, args ...any) { msgs = append(msgs, fmt.Sprintf(format, args...)) }

	prefixOK := true
	if p.Prefix == "" {
		prefixOK = false
		add("Prefix is empty; set delay.topic_prefix, e.g. kasync.delay")
	} else if msg := topicNameProblem(p.Prefix); msg != "" {
		prefixOK = false
		add("Prefix %q %s", p.Prefix, msg)
	}
	if len(p.Rungs) == 0 {
		add("Rungs is empty; list at least one rung, e.g. [30s, 1m, 5m, 30m]")
	}
	// Kafka refuses two topics whose names differ only in '.' against '_'.
	seen := map[string]string{}
	claim := func(field, topic string) {
		norm := strings.ReplaceAll(topic, ".", "_")
		if other, dup := seen[norm]; dup {
			add("%s: topic %q collides with %s (Kafka treats '.' and '_' alike); give each a distinct name", field, topic, other)
			return
		}
		seen[norm] = fmt.Sprintf("%s (%q)", field, topic)
	}
	for i, r := range p.Rungs {
		field := fmt.Sprintf("Rungs[%d]", i)
		switch {
		case r <= 0:
			add("%s is %s; a rung must be positive, e.g. 30s", field, durationName(r))
			continue
		case r%time.Millisecond != 0:
			add("%s is %s; a rung must be a whole number of milliseconds (Kafka timestamps are in ms)", field, durationName(r))
			continue
		case r > maxTopicRung:
			add("%s is %s; a rung may be at most %s: chain shorter rungs for longer delays", field, durationName(r), durationName(maxTopicRung))
			continue
		}
		if !prefixOK {
			continue
		}
		topic := RungTopic(p.Prefix, r)
		if msg := topicNameProblem(topic); msg != "" {
			add("%s: its topic %q %s; shorten Prefix", field, topic, msg)
			continue
		}
		claim(field, topic)
	}
	if p.DeadLetter == "" {
		add("DeadLetter is empty; set dead_letter.topic, e.g. kasync.dead-letter")
	} else if msg := topicNameProblem(p.DeadLetter); msg != "" {
		add("DeadLetter %q %s", p.DeadLetter, msg)
	} else {
		claim("DeadLetter", p.DeadLetter)
	}
	if p.Partitions < 1 {
		add("Partitions is %d; set 1 or more (0 means the default, %d)", p.Partitions, DefaultTopicPartitions)
	}
	if p.Replication < -1 {
		add("Replication is %d; set 1 or more, or -1 for the broker's default", p.Replication)
	}
	if p.MinRetention < 0 {
		add("MinRetention is %s; set a positive duration (0 means the default, %s)", durationName(p.MinRetention), durationName(DefaultMinRetention))
	}
	if p.DeadLetterMinRetention < 0 && p.DeadLetterMinRetention != RetentionInfinite {
		add("DeadLetterMinRetention is %s; set a positive duration, 0 for the default (%s) or RetentionInfinite (-1)",
			durationName(p.DeadLetterMinRetention), durationName(DefaultDeadLetterMinRetention))
	}
	if len(msgs) > 0 {
		return fmt.Errorf("delaystreams: topic plan: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// topicNameProblem says why name is not a legal Kafka topic name, or "".
func topicNameProblem(name string) string {
	switch {
	case name == "." || name == "..":
		return `is not a valid topic name ("." and ".." are reserved)`
	case len(name) > maxTopicNameLen:
		return fmt.Sprintf("is %d characters long; Kafka allows at most %d", len(name), maxTopicNameLen)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Sprintf("contains %q; Kafka topic names may only use a-z, A-Z, 0-9, '.', '_' and '-'", r)
		}
	}
	return ""
}

// topicSpec is what one topic must be.
type topicSpec struct {
	name string
	rung time.Duration // 0 for the dead-letter topic
	// minRetentionMs is the least retention.ms that fits; -1 accepts only infinite.
	minRetentionMs int64
}

func (s topicSpec) isRung() bool { return s.rung > 0 }

// what names the topic's role for messages.
func (s topicSpec) what() string {
	if s.isRung() {
		return "rung " + durationName(s.rung)
	}
	return "the dead-letter topic"
}

// createConfigs are the configs a topic kasync creates gets.
func (s topicSpec) createConfigs() map[string]*string {
	cfg := map[string]*string{
		cfgCleanupPolicy:  kadm.StringPtr("delete"),
		cfgRetentionMs:    kadm.StringPtr(strconv.FormatInt(s.minRetentionMs, 10)),
		cfgRetentionBytes: kadm.StringPtr("-1"),
	}
	if s.isRung() {
		cfg[cfgTimestampType] = kadm.StringPtr(logAppendTime)
	}
	return cfg
}

// specs lists the topics of a defaulted, valid plan: rungs in plan order, then the dead
// letter.
func (p TopicPlan) specs() []topicSpec {
	out := make([]topicSpec, 0, len(p.Rungs)+1)
	for _, r := range p.Rungs {
		least := max(p.MinRetention, rungRetentionFactor*r)
		out = append(out, topicSpec{name: RungTopic(p.Prefix, r), rung: r, minRetentionMs: retentionMillis(least)})
	}
	dl := int64(-1)
	if p.DeadLetterMinRetention != RetentionInfinite {
		dl = retentionMillis(p.DeadLetterMinRetention)
	}
	return append(out, topicSpec{name: p.DeadLetter, minRetentionMs: dl})
}

func retentionMillis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// ProblemKind classifies a TopicProblem.
type ProblemKind string

// Kinds of topic problems.
const (
	ProblemRetention      ProblemKind = "retention"       // retention.ms too short
	ProblemRetentionBytes ProblemKind = "retention-bytes" // size-based deletion enabled
	ProblemCompaction     ProblemKind = "compaction"      // cleanup.policy includes compact
	ProblemTimestampType  ProblemKind = "timestamp-type"  // a rung with CreateTime
	ProblemPartitions     ProblemKind = "partitions"      // fewer than one partition
	ProblemConfigValue    ProblemKind = "config-value"    // a config kasync cannot read
	ProblemCreate         ProblemKind = "create"          // the broker refused to create it
	ProblemUnavailable    ProblemKind = "unavailable"     // the cluster does not show it
)

// TopicProblem is one reason a topic is unfit for kasync.
type TopicProblem struct {
	Topic  string
	Kind   ProblemKind
	Config string // the config at fault, e.g. "retention.ms"; "" when none
	Detail string // what is wrong and why it matters
	Fix    string // what the operator can do
}

func (p TopicProblem) String() string {
	s := fmt.Sprintf("topic %s: %s", p.Topic, p.Detail)
	if p.Fix != "" {
		s += ". Fix: " + p.Fix
	}
	return s
}

// TopicProblems is the error of EnsureTopics when topics are unfit: every problem found,
// in plan order (rungs, then the dead letter). kasync must not start until they are
// fixed.
type TopicProblems struct {
	Problems []TopicProblem
}

func (e *TopicProblems) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "delaystreams: %d problem(s) with kasync's topics:", len(e.Problems))
	for _, p := range e.Problems {
		sb.WriteString("\n  - ")
		sb.WriteString(p.String())
	}
	return sb.String()
}

// topicAlterFix is the kafka-configs command that sets one topic config.
func topicAlterFix(topic, kv string) string {
	return fmt.Sprintf("kafka-configs --bootstrap-server BROKERS --alter --entity-type topics --entity-name %s --add-config %s", topic, kv)
}

// EnsureTopics creates the missing rung and dead-letter topics of plan with the configs
// kasync needs, checks every one of them, and returns a *TopicProblems listing every
// problem at once when any topic is unfit: retention shorter than required, size-based
// retention, compaction, CreateTime timestamps on a rung, no partitions, or a topic the
// broker would not create. A topic kasync did not create but that fits is fine, whatever
// its partition count.
//
// It is idempotent and safe when several nodes run it at once: a topic another node
// created first (TopicAlreadyExists) is checked like any other. Other errors (the
// request failed, ctx ended) are returned wrapped. A nil log means slog.Default().
func EnsureTopics(ctx context.Context, adm *kadm.Client, plan TopicPlan, log *slog.Logger) error {
	_, err := ensureTopics(ctx, adm, plan, log)
	return err
}

// ensureTopics is EnsureTopics that also says which topics it created.
func ensureTopics(ctx context.Context, adm *kadm.Client, plan TopicPlan, log *slog.Logger) ([]string, error) {
	if adm == nil {
		return nil, errors.New("delaystreams: ensure topics: nil admin client")
	}
	if log == nil {
		log = slog.Default()
	}
	plan = plan.withDefaults()
	if err := plan.validate(); err != nil {
		return nil, err
	}
	specs := plan.specs()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}

	md, err := freshMetadata(ctx, adm, names)
	if err != nil {
		return nil, fmt.Errorf("delaystreams: ensure topics: metadata: %w", err)
	}
	var (
		created  []string
		problems = map[string][]TopicProblem{}
	)
	for _, s := range specs {
		td, ok := md.Topics[s.name]
		if ok && !errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			continue // it exists (or is being created); checked below
		}
		made, prob, err := createPlanTopic(ctx, adm, plan, s, log)
		if err != nil {
			return created, err
		}
		if made {
			created = append(created, s.name)
		}
		if prob != nil {
			problems[s.name] = append(problems[s.name], *prob)
		}
	}

	if err := checkPlanTopics(ctx, adm, specs, len(md.Brokers), problems, topicSettleTimeout, log); err != nil {
		return created, err
	}
	var all []TopicProblem
	for _, s := range specs {
		all = append(all, problems[s.name]...)
	}
	if len(all) > 0 {
		return created, &TopicProblems{Problems: all}
	}
	if len(created) > 0 {
		log.Info("delaystreams: kasync topics ready", "created", created, "checked", len(specs))
	} else {
		log.Debug("delaystreams: kasync topics fit; nothing to create", "checked", len(specs))
	}
	return created, nil
}

// freshMetadata asks the cluster for the metadata of topics. kadm.Metadata answers
// from the client's cache for up to MetadataMinAge (5s by default), which would hide a
// topic created a moment ago; asking for authorized operations makes kadm send the
// request instead.
func freshMetadata(ctx context.Context, adm *kadm.Client, topics []string) (kadm.Metadata, error) {
	return adm.Metadata(kadm.WithAuthorizedOps(ctx), topics...)
}

// createPlanTopic creates s. It returns whether this call created it, a problem when the
// broker refused it, and an error when the request itself failed.
func createPlanTopic(ctx context.Context, adm *kadm.Client, plan TopicPlan, s topicSpec, log *slog.Logger) (bool, *TopicProblem, error) {
	cfg := s.createConfigs()
	resp, err := adm.CreateTopic(ctx, plan.Partitions, plan.Replication, cfg, s.name)
	var kerrErr *kerr.Error
	switch {
	case err == nil:
		log.Info("delaystreams: created topic", "topic", s.name, "for", s.what(),
			"partitions", resp.NumPartitions, "replication", resp.ReplicationFactor,
			cfgRetentionMs, *cfg[cfgRetentionMs])
		return true, nil, nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		log.Debug("delaystreams: topic created meanwhile, by another node or operator", "topic", s.name)
		return false, nil, nil
	case errors.As(err, &kerrErr):
		detail := fmt.Sprintf("does not exist and the broker refused to create it: %v", err)
		if resp.ErrMessage != "" {
			detail += " (" + resp.ErrMessage + ")"
		}
		return false, &TopicProblem{Topic: s.name, Kind: ProblemCreate, Detail: detail, Fix: topicCreateFix(plan, s)}, nil
	default:
		return false, nil, fmt.Errorf("delaystreams: create topic %s: %w", s.name, err)
	}
}

// topicCreateFix is the kafka-topics command that creates s by hand.
func topicCreateFix(plan TopicPlan, s topicSpec) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "let kasync's principal create topics, or create it yourself: kafka-topics --bootstrap-server BROKERS --create --topic %s --partitions %d", s.name, plan.Partitions)
	if plan.Replication > 0 {
		fmt.Fprintf(&sb, " --replication-factor %d", plan.Replication)
	}
	cfg := s.createConfigs()
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		fmt.Fprintf(&sb, " --config %s=%s", k, *cfg[k])
	}
	return sb.String()
}

// checkPlanTopics describes every topic and adds its problems. Topics that the cluster does
// not show yet, or whose configs it cannot describe yet, are asked again for up to
// settle; then they are problems too.
func checkPlanTopics(ctx context.Context, adm *kadm.Client, specs []topicSpec, brokers int, problems map[string][]TopicProblem, settle time.Duration, log *slog.Logger) error {
	var pending []topicSpec
	for _, s := range specs {
		if len(problems[s.name]) == 0 || problems[s.name][0].Kind != ProblemCreate { // refused: nothing to check
			pending = append(pending, s)
		}
	}
	deadline := time.Now().Add(settle)
	wait := backoff.Backoff{Min: 50 * time.Millisecond, Max: time.Second}
	for len(pending) > 0 {
		ask := make([]string, len(pending))
		for i, s := range pending {
			ask[i] = s.name
		}
		md, err := freshMetadata(ctx, adm, ask)
		if err != nil {
			return fmt.Errorf("delaystreams: check topics: metadata: %w", err)
		}
		cfgs, err := adm.DescribeTopicConfigs(ctx, ask...)
		if err != nil {
			return fmt.Errorf("delaystreams: check topics: describe configs: %w", err)
		}
		var notYet []topicSpec
		var why []string
		for _, s := range pending {
			td, listed := md.Topics[s.name]
			rc, rcErr := cfgs.On(s.name, nil)
			if rcErr == nil {
				rcErr = rc.Err
			}
			switch {
			case !listed:
				notYet, why = append(notYet, s), append(why, "metadata: not in the response")
			case td.Err != nil && (errors.Is(td.Err, kerr.UnknownTopicOrPartition) || kerr.IsRetriable(td.Err)):
				notYet, why = append(notYet, s), append(why, fmt.Sprintf("metadata: %v", td.Err))
			case td.Err != nil:
				problems[s.name] = append(problems[s.name], TopicProblem{Topic: s.name, Kind: ProblemUnavailable,
					Detail: fmt.Sprintf("kasync cannot describe it: %v", td.Err),
					Fix:    "let kasync's principal describe the topic and its configs (DESCRIBE and DESCRIBE_CONFIGS ACLs)"})
			case rcErr != nil && (errors.Is(rcErr, kerr.UnknownTopicOrPartition) || kerr.IsRetriable(rcErr)):
				notYet, why = append(notYet, s), append(why, fmt.Sprintf("describe configs: %v", rcErr))
			case rcErr != nil:
				problems[s.name] = append(problems[s.name], TopicProblem{Topic: s.name, Kind: ProblemUnavailable,
					Detail: fmt.Sprintf("kasync cannot read its configs: %v", rcErr),
					Fix:    "let kasync's principal describe the topic's configs (DESCRIBE_CONFIGS ACL)"})
			default:
				problems[s.name] = append(problems[s.name], checkTopicFit(s, td, rc, brokers, log)...)
			}
		}
		if len(notYet) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for i, s := range notYet {
				problems[s.name] = append(problems[s.name], TopicProblem{Topic: s.name, Kind: ProblemUnavailable,
					Detail: fmt.Sprintf("the cluster still does not show it %s after it was created (%s)", durationName(settle), why[i]),
					Fix:    "check the brokers' health and that the topic exists (kafka-topics --describe --topic " + s.name + "), then start again"})
			}
			return nil
		}
		log.Debug("delaystreams: waiting for topics to show in the cluster", "topics", len(notYet), "first", notYet[0].name, "why", why[0])
		if !backoff.Sleep(ctx, wait.Next()) {
			return fmt.Errorf("delaystreams: check topics: %w", ctx.Err())
		}
		pending = notYet
	}
	return nil
}

// checkTopicFit is the pure check of one described topic against its spec. Findings that
// do not make the topic unfit are logged.
func checkTopicFit(s topicSpec, td kadm.TopicDetail, rc kadm.ResourceConfig, brokers int, log *slog.Logger) []TopicProblem {
	var out []TopicProblem
	add := func(kind ProblemKind, config, detail, fix string) {
		out = append(out, TopicProblem{Topic: s.name, Kind: kind, Config: config, Detail: detail, Fix: fix})
	}
	if len(td.Partitions) < 1 {
		add(ProblemPartitions, "", "has no partitions", "delete it and let kasync recreate it, or create it with 1 or more partitions")
	}
	replicas := 0
	for _, p := range td.Partitions {
		replicas = max(replicas, len(p.Replicas))
		if p.Leader < 0 || p.Err != nil {
			log.Warn("delaystreams: topic partition has no leader now; producing to it will wait", "topic", s.name, "partition", p.Partition, "err", p.Err)
		}
	}
	if replicas == 1 && brokers > 1 {
		log.Warn("delaystreams: topic has one replica; losing its broker loses the records it holds", "topic", s.name, "for", s.what(), "brokers", brokers)
	}

	cfg := map[string]string{}
	for _, c := range rc.Configs {
		if c.Value != nil {
			cfg[c.Key] = *c.Value
		}
	}
	lookup := func(key string) (string, bool) {
		v, ok := cfg[key]
		if !ok {
			log.Warn("delaystreams: the broker does not report a topic config; kasync cannot check it", "topic", s.name, "config", key)
		}
		return v, ok
	}

	if v, ok := lookup(cfgCleanupPolicy); ok && strings.Contains(v, "compact") {
		add(ProblemCompaction, cfgCleanupPolicy,
			fmt.Sprintf("cleanup.policy is %q: compaction keeps only the last record of each key, so retries of one key would replace each other and be lost", v),
			topicAlterFix(s.name, "cleanup.policy=delete"))
	}

	if v, ok := lookup(cfgRetentionMs); ok {
		checkTopicRetention(s, v, add)
	}

	if v, ok := lookup(cfgRetentionBytes); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch {
		case err != nil:
			add(ProblemConfigValue, cfgRetentionBytes, fmt.Sprintf("retention.bytes is %q, not a number", v), topicAlterFix(s.name, "retention.bytes=-1"))
		case n >= 0:
			add(ProblemRetentionBytes, cfgRetentionBytes,
				fmt.Sprintf("retention.bytes is %d: size-based retention deletes the oldest records once a partition grows past it, however young they are, so %s could lose records still waiting", n, s.what()),
				topicAlterFix(s.name, "retention.bytes=-1"))
		}
	}

	if s.isRung() {
		if v, ok := lookup(cfgTimestampType); ok && v != logAppendTime {
			add(ProblemTimestampType, cfgTimestampType,
				fmt.Sprintf("message.timestamp.type is %q, but %s needs LogAppendTime: the delay reader waits from each record's timestamp, and only the broker's append time makes that independent of the clocks of producers and nodes (with CreateTime a producer whose clock runs ahead makes retries run early)", v, s.what()),
				topicAlterFix(s.name, "message.timestamp.type=LogAppendTime"))
		}
	}
	return out
}

// checkTopicRetention adds the problem of a retention.ms value v, if any.
func checkTopicRetention(s topicSpec, v string, add func(kind ProblemKind, config, detail, fix string)) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		add(ProblemConfigValue, cfgRetentionMs, fmt.Sprintf("retention.ms is %q, not a number", v),
			topicAlterFix(s.name, fmt.Sprintf("retention.ms=%d", s.minRetentionMs)))
		return
	}
	if n < 0 {
		return // infinite
	}
	if s.minRetentionMs < 0 {
		add(ProblemRetention, cfgRetentionMs,
			fmt.Sprintf("retention.ms is %d (%s), but DeadLetterMinRetention asks for infinite retention", n, durationName(time.Duration(n)*time.Millisecond)),
			topicAlterFix(s.name, "retention.ms=-1"))
		return
	}
	if n >= s.minRetentionMs {
		return
	}
	have := durationName(time.Duration(n) * time.Millisecond)
	need := durationName(time.Duration(s.minRetentionMs) * time.Millisecond)
	if s.isRung() {
		add(ProblemRetention, cfgRetentionMs,
			fmt.Sprintf("retention.ms is %d (%s), but %s needs at least %d (%s): a retry record must never be deleted while it waits, and a reader may fall behind",
				n, have, s.what(), s.minRetentionMs, need),
			topicAlterFix(s.name, fmt.Sprintf("retention.ms=%d", s.minRetentionMs))+
				", or, if it holds no waiting records, delete it (kafka-topics --delete --topic "+s.name+") so kasync recreates it")
		return
	}
	add(ProblemRetention, cfgRetentionMs,
		fmt.Sprintf("retention.ms is %d (%s), but the dead-letter topic needs at least %d (%s), or -1 for infinite: dead letters are the only copy of failed events",
			n, have, s.minRetentionMs, need),
		topicAlterFix(s.name, fmt.Sprintf("retention.ms=%d", s.minRetentionMs)))
}

// durationName writes d as the configuration does (and as rung topic names do).
func durationName(d time.Duration) string { return config.Duration(d).String() }
