package delaystreams

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/kafkatest"
)

func TestRungTopic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rung time.Duration
		want string
	}{
		{30 * time.Second, "kasync.delay.30s"},
		{time.Minute, "kasync.delay.1m"},
		{5 * time.Minute, "kasync.delay.5m"},
		{30 * time.Minute, "kasync.delay.30m"},
		{90 * time.Minute, "kasync.delay.1h30m"},
		{250 * time.Millisecond, "kasync.delay.250ms"},
		{2 * time.Hour, "kasync.delay.2h"},
		{90 * time.Second, "kasync.delay.1m30s"},
		{time.Hour + 30*time.Second, "kasync.delay.1h30s"},
		{1500 * time.Millisecond, "kasync.delay.1.5s"},
		{48 * time.Hour, "kasync.delay.48h"},
	} {
		require.Equal(t, tc.want, RungTopic("kasync.delay", tc.rung), "rung %v", tc.rung)
	}
}

// FuzzRungTopicRoundTrip: the suffix of a rung topic always parses back to the rung and
// is a legal topic name part.
func FuzzRungTopicRoundTrip(f *testing.F) {
	for _, d := range []int64{1, int64(time.Millisecond), int64(30 * time.Second), int64(90 * time.Minute), int64(time.Hour + 500*time.Millisecond)} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		if n <= 0 {
			return
		}
		d := time.Duration(n)
		name := durationName(d)
		got, err := time.ParseDuration(name)
		require.NoError(t, err, "%v named %q", d, name)
		require.Equal(t, d, got, "%v named %q", d, name)
		require.LessOrEqual(t, len(name), len(d.String()))
		require.Empty(t, topicNameProblem(RungTopic("p", d)))
	})
}

func TestTopicPlanValidate(t *testing.T) {
	t.Parallel()
	good := TopicPlan{Prefix: "kasync.delay", Rungs: DefaultRungs(), DeadLetter: "kasync.dead-letter"}
	require.NoError(t, good.withDefaults().validate())

	for _, tc := range []struct {
		name string
		edit func(p *TopicPlan)
		want []string
	}{
		{"empty prefix", func(p *TopicPlan) { p.Prefix = "" }, []string{"Prefix is empty", "delay.topic_prefix"}},
		{"bad prefix", func(p *TopicPlan) { p.Prefix = "kasync delay" }, []string{`Prefix "kasync delay"`, "' '"}},
		{"no rungs", func(p *TopicPlan) { p.Rungs = nil }, []string{"Rungs is empty"}},
		{"negative rung", func(p *TopicPlan) { p.Rungs = []time.Duration{-time.Second} }, []string{"Rungs[0] is -1s", "positive"}},
		{"sub-millisecond rung", func(p *TopicPlan) { p.Rungs = []time.Duration{1500 * time.Microsecond} }, []string{"Rungs[0]", "whole number of milliseconds"}},
		{"huge rung", func(p *TopicPlan) { p.Rungs = []time.Duration{400 * 24 * time.Hour} }, []string{"Rungs[0]", "at most 8760h"}},
		{"duplicate rung", func(p *TopicPlan) { p.Rungs = []time.Duration{time.Minute, 60 * time.Second} }, []string{"Rungs[1]", "collides with Rungs[0]"}},
		{"empty dead letter", func(p *TopicPlan) { p.DeadLetter = "" }, []string{"DeadLetter is empty", "dead_letter.topic"}},
		{"bad dead letter", func(p *TopicPlan) { p.DeadLetter = ".." }, []string{"DeadLetter", "reserved"}},
		{"dead letter is a rung", func(p *TopicPlan) { p.DeadLetter = "kasync_delay_30s" }, []string{"DeadLetter", "collides with Rungs[0]"}},
		{"long prefix", func(p *TopicPlan) { p.Prefix = strings.Repeat("a", 247) }, []string{"Rungs[0]", "Kafka allows at most 249", "shorten Prefix"}},
		{"bad partitions", func(p *TopicPlan) { p.Partitions = -3 }, []string{"Partitions is -3", "1 or more"}},
		{"bad replication", func(p *TopicPlan) { p.Replication = -2 }, []string{"Replication is -2"}},
		{"bad min retention", func(p *TopicPlan) { p.MinRetention = -time.Hour }, []string{"MinRetention is -1h"}},
		{"bad dead-letter retention", func(p *TopicPlan) { p.DeadLetterMinRetention = -2 }, []string{"DeadLetterMinRetention", "RetentionInfinite"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := good
			p.Rungs = slices.Clone(good.Rungs)
			tc.edit(&p)
			err := p.withDefaults().validate()
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			// EnsureTopics refuses the plan before it talks to any broker.
			adm := kadm.NewClient(nil)
			require.EqualError(t, EnsureTopics(t.Context(), adm, p, nil), err.Error())
		})
	}

	// Every problem at once.
	err := TopicPlan{Partitions: -1}.withDefaults().validate()
	require.Error(t, err)
	for _, w := range []string{"Prefix is empty", "Rungs is empty", "DeadLetter is empty", "Partitions is -1"} {
		require.Contains(t, err.Error(), w)
	}
}

func TestTopicPlanSpecs(t *testing.T) {
	t.Parallel()
	week := (7 * 24 * time.Hour).Milliseconds()
	specs := TopicPlan{Prefix: "p", Rungs: []time.Duration{30 * time.Second, 48 * time.Hour}, DeadLetter: "dl"}.withDefaults().specs()
	require.Equal(t, []topicSpec{
		{name: "p.30s", rung: 30 * time.Second, minRetentionMs: week},
		{name: "p.48h", rung: 48 * time.Hour, minRetentionMs: (480 * time.Hour).Milliseconds()}, // 10 × the rung
		{name: "dl", minRetentionMs: 2 * week},
	}, specs)

	p := TopicPlan{Prefix: "p", Rungs: []time.Duration{time.Second}, DeadLetter: "dl",
		MinRetention: time.Hour, DeadLetterMinRetention: RetentionInfinite}.withDefaults()
	require.NoError(t, p.validate())
	specs = p.specs()
	require.Equal(t, time.Hour.Milliseconds(), specs[0].minRetentionMs)
	require.Equal(t, int64(-1), specs[1].minRetentionMs)
	require.Equal(t, "-1", *specs[1].createConfigs()[cfgRetentionMs])
	require.NotContains(t, specs[1].createConfigs(), cfgTimestampType, "the dead letter keeps the producer's time")
	require.Equal(t, logAppendTime, *specs[0].createConfigs()[cfgTimestampType])
}

// TestCheckTopicFit covers what a broker under test cannot easily show: a topic without
// partitions, configs that do not parse, and configs the broker does not report.
func TestCheckTopicFit(t *testing.T) {
	t.Parallel()
	s := topicSpec{name: "p.30s", rung: 30 * time.Second, minRetentionMs: 1000}
	rc := kadm.ResourceConfig{Name: s.name, Configs: []kadm.Config{
		{Key: cfgRetentionMs, Value: kadm.StringPtr("soon")},
		{Key: cfgRetentionBytes, Value: kadm.StringPtr("lots")},
		{Key: cfgCleanupPolicy, Value: kadm.StringPtr("compact,delete")},
	}}
	probs := checkTopicFit(s, kadm.TopicDetail{Topic: s.name}, rc, 1, slog.New(slog.DiscardHandler))
	kinds := make([]ProblemKind, 0, len(probs))
	for _, p := range probs {
		kinds = append(kinds, p.Kind)
		require.Equal(t, s.name, p.Topic)
		require.NotEmpty(t, p.Fix)
	}
	// message.timestamp.type is not reported: logged, not a problem.
	require.Equal(t, []ProblemKind{ProblemPartitions, ProblemCompaction, ProblemConfigValue, ProblemConfigValue}, kinds)

	// Infinite retention always fits; a dead letter that must be infinite refuses less.
	one := kadm.PartitionDetails{0: {Partition: 0, Replicas: []int32{1}}}
	fits := kadm.ResourceConfig{Configs: []kadm.Config{
		{Key: cfgRetentionMs, Value: kadm.StringPtr("-1")},
		{Key: cfgRetentionBytes, Value: kadm.StringPtr("-1")},
		{Key: cfgCleanupPolicy, Value: kadm.StringPtr("delete")},
		{Key: cfgTimestampType, Value: kadm.StringPtr(logAppendTime)},
	}}
	require.Empty(t, checkTopicFit(s, kadm.TopicDetail{Partitions: one}, fits, 3, slog.New(slog.DiscardHandler)))
	dl := topicSpec{name: "dl", minRetentionMs: -1}
	fits.Configs[0].Value = kadm.StringPtr("999999999999")
	probs = checkTopicFit(dl, kadm.TopicDetail{Partitions: one}, fits, 1, slog.New(slog.DiscardHandler))
	require.Len(t, probs, 1)
	require.Equal(t, ProblemRetention, probs[0].Kind)
	require.Contains(t, probs[0].Fix, "retention.ms=-1")
}

// topicPlan is a plan with a unique prefix and dead-letter topic, deleted after the
// test on a real cluster.
func topicPlan(t *testing.T, brokers []string, rungs ...time.Duration) TopicPlan {
	t.Helper()
	p := TopicPlan{
		Prefix:     kafkatest.TopicName(t),
		Rungs:      rungs,
		DeadLetter: kafkatest.TopicName(t) + "-dlq",
		Partitions: 3,
	}
	if _, onCluster := os.LookupEnv(kafkatest.EnvBrokers); onCluster {
		t.Cleanup(func() {
			names := planTopics(p)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: brokers, ClientID: "kasync-test"})
			if err != nil {
				t.Logf("delete topics %v: %v", names, err)
				return
			}
			defer cl.Close()
			if _, err := kadm.NewClient(cl).DeleteTopics(ctx, names...); err != nil {
				t.Logf("delete topics %v: %v (delete them by hand)", names, err)
			}
		})
	}
	return p
}

func planTopics(p TopicPlan) []string {
	var names []string
	for _, s := range p.withDefaults().specs() {
		names = append(names, s.name)
	}
	return names
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// describe returns the value of every config of topic.
func describe(t *testing.T, adm *kadm.Client, topic string) map[string]string {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(t.Context(), topic)
	require.NoError(t, err)
	rc, err := rcs.On(topic, nil)
	require.NoError(t, err)
	require.NoError(t, rc.Err)
	out := map[string]string{}
	for _, c := range rc.Configs {
		out[c.Key] = c.MaybeValue()
	}
	return out
}

func TestEnsureTopicsCreatesThenIsANoOp(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	adm := kafkatest.Admin(t, brokers)
	plan := topicPlan(t, brokers, 30*time.Second, time.Minute, 5*time.Minute, 30*time.Minute, 48*time.Hour)

	created, err := ensureTopics(t.Context(), adm, plan, quietLog())
	require.NoError(t, err)
	require.ElementsMatch(t, planTopics(plan), created)

	details, err := adm.ListTopics(t.Context(), planTopics(plan)...)
	require.NoError(t, err)
	for _, name := range planTopics(plan) {
		require.NoError(t, details[name].Err, name)
		require.Len(t, details[name].Partitions, 3, name)
	}
	week := strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10)
	for _, tc := range []struct {
		topic, retention string
		rung             bool
	}{
		{RungTopic(plan.Prefix, 30*time.Second), week, true},
		{RungTopic(plan.Prefix, 30*time.Minute), week, true},
		{RungTopic(plan.Prefix, 48*time.Hour), strconv.FormatInt((480 * time.Hour).Milliseconds(), 10), true},
		{plan.DeadLetter, strconv.FormatInt((14 * 24 * time.Hour).Milliseconds(), 10), false},
	} {
		cfg := describe(t, adm, tc.topic)
		require.Equal(t, "delete", cfg[cfgCleanupPolicy], tc.topic)
		require.Equal(t, tc.retention, cfg[cfgRetentionMs], tc.topic)
		require.Equal(t, "-1", cfg[cfgRetentionBytes], tc.topic)
		if tc.rung {
			require.Equal(t, logAppendTime, cfg[cfgTimestampType], tc.topic)
		}
	}

	// Second run: nothing to create, nothing wrong, nothing changed.
	created, err = ensureTopics(t.Context(), adm, plan, quietLog())
	require.NoError(t, err)
	require.Empty(t, created)
	after, err := adm.ListTopics(t.Context(), planTopics(plan)...)
	require.NoError(t, err)
	for _, name := range planTopics(plan) {
		require.Equal(t, details[name].ID, after[name].ID, "%s was recreated", name)
	}
	require.NoError(t, EnsureTopics(t.Context(), adm, plan, nil))
}

func TestEnsureTopicsConcurrentNodes(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	plan := topicPlan(t, brokers, 10*time.Millisecond, 50*time.Millisecond, 250*time.Millisecond)

	const nodes = 3
	var (
		wg      sync.WaitGroup
		created [nodes][]string
		errs    [nodes]error
	)
	for i := range nodes {
		adm := kafkatest.Admin(t, brokers) // one client per node
		wg.Go(func() { created[i], errs[i] = ensureTopics(t.Context(), adm, plan, quietLog()) })
	}
	wg.Wait()
	var all []string
	for i := range nodes {
		require.NoError(t, errs[i], "node %d", i)
		all = append(all, created[i]...)
	}
	// Each topic was created by exactly one node; the others found it and checked it.
	require.ElementsMatch(t, planTopics(plan), all)

	// The losing side of a create race: TopicAlreadyExists is neither a problem nor an
	// error, and the topic is then checked like any other.
	p := plan.withDefaults()
	made, prob, err := createPlanTopic(t.Context(), kafkatest.Admin(t, brokers), p, p.specs()[0], quietLog())
	require.NoError(t, err)
	require.Nil(t, prob)
	require.False(t, made)
}

func TestEnsureTopicsRejectsUnfitTopics(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	adm := kafkatest.Admin(t, brokers)
	plan := topicPlan(t, brokers, 30*time.Second, time.Minute, 5*time.Minute, 30*time.Minute)
	week := (7 * 24 * time.Hour).Milliseconds()

	// Topics an operator made by hand: each fine but for one thing.
	good := func(s topicSpec) map[string]*string { return s.createConfigs() }
	specs := plan.withDefaults().specs()
	short, compact, createTime, dl := specs[0], specs[1], specs[2], specs[4]
	unfit := map[topicSpec]func(map[string]*string){
		short:      func(c map[string]*string) { c[cfgRetentionMs] = kadm.StringPtr("60000") },
		compact:    func(c map[string]*string) { c[cfgCleanupPolicy] = kadm.StringPtr("compact") },
		createTime: func(c map[string]*string) { c[cfgTimestampType] = kadm.StringPtr("CreateTime") },
		dl:         func(c map[string]*string) { c[cfgRetentionMs] = kadm.StringPtr("86400000") },
	}
	for s, edit := range unfit {
		cfg := good(s)
		edit(cfg)
		_, err := adm.CreateTopic(t.Context(), 1, -1, cfg, s.name)
		require.NoError(t, err, s.name)
	}

	created, err := ensureTopics(t.Context(), adm, plan, quietLog())
	var tp *TopicProblems
	require.ErrorAs(t, err, &tp)
	// The missing rung was still created: the operator sees every problem at once.
	require.Equal(t, []string{specs[3].name}, created)

	got := map[string]ProblemKind{}
	for _, p := range tp.Problems {
		require.NotContains(t, got, p.Topic, "one problem per topic expected: %v", tp.Problems)
		got[p.Topic] = p.Kind
		require.Contains(t, p.Fix, "kafka-configs", p.Topic)
		require.Contains(t, p.Fix, "--entity-name "+p.Topic)
	}
	require.Equal(t, map[string]ProblemKind{
		short.name:      ProblemRetention,
		compact.name:    ProblemCompaction,
		createTime.name: ProblemTimestampType,
		dl.name:         ProblemRetention,
	}, got)
	require.Equal(t, short.name, tp.Problems[0].Topic, "problems follow the plan: rungs, then the dead letter")
	require.Equal(t, dl.name, tp.Problems[len(tp.Problems)-1].Topic)

	msg := err.Error()
	for _, want := range []string{
		"4 problem(s)",
		"topic " + short.name + ": retention.ms is 60000 (1m), but rung 30s needs at least " + strconv.FormatInt(week, 10) + " (168h)",
		"--add-config retention.ms=" + strconv.FormatInt(week, 10),
		"kafka-topics --delete --topic " + short.name,
		"topic " + compact.name + `: cleanup.policy is "compact"`,
		"--add-config cleanup.policy=delete",
		"topic " + createTime.name + `: message.timestamp.type is "CreateTime", but rung 5m needs LogAppendTime`,
		"clocks of producers and nodes",
		"--add-config message.timestamp.type=LogAppendTime",
		"topic " + dl.name + ": retention.ms is 86400000 (24h), but the dead-letter topic needs at least 1209600000 (336h), or -1",
	} {
		require.Contains(t, msg, want)
	}

	// Applying the fixes the error names makes the topics fit.
	set := func(topic, key, value string) {
		resp, err := adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: key, Value: kadm.StringPtr(value)}}, topic)
		require.NoError(t, err)
		for _, r := range resp {
			require.NoError(t, r.Err, "%s %s=%s", topic, key, value)
		}
	}
	set(short.name, cfgRetentionMs, strconv.FormatInt(week, 10))
	set(compact.name, cfgCleanupPolicy, "delete")
	set(createTime.name, cfgTimestampType, logAppendTime)
	set(dl.name, cfgRetentionMs, "-1") // infinite always fits a dead letter
	created, err = ensureTopics(t.Context(), adm, plan, quietLog())
	require.NoError(t, err)
	require.Empty(t, created)
}

func TestEnsureTopicsRetentionBytes(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	adm := kafkatest.Admin(t, brokers)
	plan := topicPlan(t, brokers, time.Second)
	rung := plan.withDefaults().specs()[0]
	cfg := rung.createConfigs()
	cfg[cfgRetentionBytes] = kadm.StringPtr("1048576")
	_, err := adm.CreateTopic(t.Context(), 1, -1, cfg, rung.name)
	require.NoError(t, err)

	err = EnsureTopics(t.Context(), adm, plan, quietLog())
	var tp *TopicProblems
	require.ErrorAs(t, err, &tp)
	require.Len(t, tp.Problems, 1)
	require.Equal(t, ProblemRetentionBytes, tp.Problems[0].Kind)
	require.Equal(t, rung.name, tp.Problems[0].Topic)
	require.Contains(t, err.Error(), "--add-config retention.bytes=-1")
}

func TestEnsureTopicsCreateRefused(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	adm := kafkatest.Admin(t, brokers)
	plan := topicPlan(t, brokers, time.Second)
	plan.Replication = 1000 // more replicas than any cluster has brokers

	created, err := ensureTopics(t.Context(), adm, plan, quietLog())
	require.Empty(t, created)
	var tp *TopicProblems
	require.ErrorAs(t, err, &tp)
	require.Len(t, tp.Problems, 2)
	for _, p := range tp.Problems {
		require.Equal(t, ProblemCreate, p.Kind)
		require.Contains(t, p.Detail, "REPLICATION_FACTOR")
		require.Contains(t, p.Fix, "kafka-topics --bootstrap-server BROKERS --create --topic "+p.Topic+" --partitions 3 --replication-factor 1000")
	}
	require.Contains(t, tp.Problems[0].Fix, "--config message.timestamp.type=LogAppendTime")
	require.NotContains(t, tp.Problems[1].Fix, "message.timestamp.type", "the dead letter keeps CreateTime")
}

func TestEnsureTopicsStopsWithContext(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	adm := kafkatest.Admin(t, brokers)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := EnsureTopics(ctx, adm, topicPlan(t, brokers, time.Second), quietLog())
	require.ErrorIs(t, err, context.Canceled)
	var tp *TopicProblems
	require.False(t, errors.As(err, &tp), "a cancelled run is not a topic problem")
}

// TestCheckTopicsWaitsForNewTopics: a topic that does not show up (created, then lost)
// is asked for again until the settle time, then reported; the wait ends with ctx.
func TestCheckTopicsWaitsForNewTopics(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	adm := kafkatest.Admin(t, brokers)
	ghost := topicSpec{name: kafkatest.TopicName(t), rung: time.Second, minRetentionMs: 1000}

	problems := map[string][]TopicProblem{}
	start := time.Now()
	err := checkPlanTopics(t.Context(), adm, []topicSpec{ghost}, 1, problems, 300*time.Millisecond, quietLog())
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "gave up before the settle time")
	require.Len(t, problems[ghost.name], 1)
	require.Equal(t, ProblemUnavailable, problems[ghost.name][0].Kind)
	require.Contains(t, problems[ghost.name][0].Detail, "still does not show it 300ms after it was created")

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err = checkPlanTopics(ctx, adm, []topicSpec{ghost}, 1, map[string][]TopicProblem{}, time.Hour, quietLog())
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestRungTopicsStampAppendTime checks what the rung config is for: a record produced
// with a timestamp far in the past reads back with the broker's append time.
func TestRungTopicsStampAppendTime(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	adm := kafkatest.Admin(t, brokers)
	plan := topicPlan(t, brokers, time.Second)
	require.NoError(t, EnsureTopics(t.Context(), adm, plan, quietLog()))
	topic := RungTopic(plan.Prefix, time.Second)

	stale := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	before := time.Now().Add(-time.Second)
	cl := kafkatest.Client(t, brokers, append(kafka.ProducerOpts(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	require.NoError(t, cl.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: []byte("x"), Timestamp: stale}).FirstErr())

	ctx, cancel := context.WithTimeout(t.Context(), kafkatest.Timeout)
	defer cancel()
	var rec *kgo.Record
	for rec == nil {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "no record read back from %s", topic)
		fs.EachError(func(_ string, _ int32, err error) { require.NoError(t, err) })
		if recs := fs.Records(); len(recs) > 0 {
			rec = recs[0]
		}
	}
	if rec.Timestamp.Equal(stale) {
		if _, onCluster := os.LookupEnv(kafkatest.EnvBrokers); !onCluster {
			t.Skip("kfake stores and reports message.timestamp.type=LogAppendTime but does not apply it: " +
				"records keep the producer's CreateTime. The config itself is still checked (TestEnsureTopics*); " +
				"on the embedded broker the delay reader sees the producer's clock")
		}
	}
	require.False(t, rec.Timestamp.Before(before), "record timestamp %v is the producer's, not the broker's append time", rec.Timestamp)
	require.True(t, rec.Attrs.TimestampType() == 1, "record timestamp type is %d, want 1 (LogAppendTime)", rec.Attrs.TimestampType())
}
