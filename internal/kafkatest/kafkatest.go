package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/broker"
	"github.com/kasync/kasync/internal/kafka"
)

// EnvBrokers names the environment variable that points the tests at a real
// cluster: a comma-separated list of HOST:PORT seed brokers.
const EnvBrokers = "KASYNC_TEST_BROKERS"

// Timeout bounds each helper call (creating a topic, producing, reading
// offsets, consuming), so a broken broker fails the test instead of hanging
// it until the go test deadline.
var Timeout = 2 * time.Minute

// maxTopicBase leaves room for the prefix and suffix within Kafka's 249.
const maxTopicBase = 200

// embedded holds the addresses of brokers started by Brokers, so that
// NewTopic knows it need not delete topics there (the broker goes away).
var embedded sync.Map

// Brokers returns seed brokers for a test: those in KASYNC_TEST_BROKERS when
// it is set, otherwise a fresh in-memory development broker on a free
// 127.0.0.1 port, closed when the test ends.
func Brokers(t testing.TB) []string {
	t.Helper()
	if env, ok := os.LookupEnv(EnvBrokers); ok {
		addrs := parseBrokers(env)
		if len(addrs) == 0 {
			t.Fatalf("kafkatest: %s=%q names no broker; set it to HOST:PORT[,HOST:PORT...] or unset it to use the embedded broker", EnvBrokers, env)
		}
		return addrs
	}
	b, err := broker.Start(broker.Options{
		Listen: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err, "kafkatest: start embedded broker")
	addrs := b.Addrs()
	for _, a := range addrs {
		embedded.Store(a, struct{}{})
	}
	t.Cleanup(func() {
		for _, a := range addrs {
			embedded.Delete(a)
		}
		require.NoError(t, b.Close(), "kafkatest: close embedded broker")
	})
	return addrs
}

func parseBrokers(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func isEmbedded(brokers []string) bool {
	for _, a := range brokers {
		if _, ok := embedded.Load(a); !ok {
			return false
		}
	}
	return len(brokers) > 0
}

// Client returns a client for brokers with opts applied, closed when the
// test ends.
func Client(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl := newClient(t, brokers, opts...)
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns an admin client for brokers, closed when the test ends.
func Admin(t testing.TB, brokers []string) *kadm.Client {
	t.Helper()
	return kadm.NewClient(Client(t, brokers))
}

func newClient(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: brokers, ClientID: "kasync-test"}, opts...)
	require.NoError(t, err)
	return cl
}

func opCtx(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), Timeout)
}

// TopicName returns a unique, valid topic name derived from the test's name.
func TopicName(t testing.TB) string {
	var sb strings.Builder
	sb.WriteString("kasynctest-")
	base := t.Name()
	if len(base) > maxTopicBase {
		base = base[:maxTopicBase]
	}
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			sb.WriteRune(r)
		default:
			// '.' is replaced too: Kafka treats '.' and '_' alike when it
			// checks names for collisions.
			sb.WriteByte('_')
		}
	}
	fmt.Fprintf(&sb, "-%08x", rand.Uint32())
	return sb.String()
}

// NewTopic creates a topic with a unique name and the given partition count
// and returns its name once every partition has a leader. On a real cluster
// the topic is deleted when the test ends.
func NewTopic(t testing.TB, brokers []string, partitions int32) string {
	t.Helper()
	if partitions < 1 {
		t.Fatalf("kafkatest: NewTopic: partitions is %d; want 1 or more", partitions)
	}
	name := TopicName(t)
	cl := newClient(t, brokers)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := opCtx(t)
	defer cancel()

	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, name)
	require.NoError(t, err, "kafkatest: create topic %s", name)
	require.NoError(t, resp.Err, "kafkatest: create topic %s: %s", name, resp.ErrMessage)
	waitForLeaders(ctx, t, adm, name, partitions)

	if !isEmbedded(brokers) {
		t.Cleanup(func() { deleteTopic(t, brokers, name) })
	}
	return name
}

// waitForLeaders polls metadata until the topic shows every partition with a
// leader: a real cluster answers CreateTopics before its metadata catches up.
func waitForLeaders(ctx context.Context, t testing.TB, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		details, err := adm.ListTopics(ctx, topic)
		if err == nil && leadersReady(details[topic], partitions) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kafkatest: topic %s has no leader for every partition after %v (last error: %v)", topic, Timeout, err)
		case <-tick.C:
		}
	}
}

func leadersReady(td kadm.TopicDetail, partitions int32) bool {
	if td.Err != nil || int32(len(td.Partitions)) != partitions {
		return false
	}
	for _, p := range td.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

func deleteTopic(t testing.TB, brokers []string, name string) {
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: brokers, ClientID: "kasync-test"})
	if err != nil {
		t.Logf("kafkatest: delete topic %s: %v", name, err)
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	resp, err := kadm.NewClient(cl).DeleteTopic(ctx, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Logf("kafkatest: delete topic %s: %v (delete it by hand)", name, err)
	}
}

// DefaultRecord is what ProduceN writes when gen is nil: key "i" and value
// "value-i".
func DefaultRecord(i int) *kgo.Record {
	return &kgo.Record{Key: strconv.AppendInt(nil, int64(i), 10), Value: fmt.Appendf(nil, "value-%d", i)}
}

// ProduceN produces n records gen(0) ... gen(n-1) to topic (records whose
// Topic is empty get topic) with kasync's durable producer options, and
// returns once every record is acknowledged. A nil gen means DefaultRecord.
// Records are produced asynchronously with at most maxBuffered in flight.
func ProduceN(t testing.TB, brokers []string, topic string, n int, gen func(i int) *kgo.Record) {
	t.Helper()
	const maxBuffered = 10_000
	if gen == nil {
		gen = DefaultRecord
	}
	cl := newClient(t, brokers, append(kafka.ProducerOpts(), kgo.MaxBufferedRecords(maxBuffered))...)
	ctx, cancel := opCtx(t)
	defer cancel()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		failed   int
	)
	for i := range n {
		r := gen(i)
		if r.Topic == "" {
			r.Topic = topic
		}
		wg.Add(1)
		// Produce blocks while maxBuffered records are unacknowledged,
		// which is what bounds the records in flight.
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("record %s/%d: %w", r.Topic, r.Partition, err)
				}
				mu.Unlock()
				cancel() // no point producing the rest
			}
		})
		if ctx.Err() != nil {
			break
		}
	}
	flushErr := cl.Flush(ctx)
	// Close fails whatever a failed flush left buffered, so every callback
	// has run once Close returns and the Wait cannot hang.
	cl.Close()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.NoError(t, firstErr, "kafkatest: produce %d records to %s: %d failed", n, topic, failed)
	require.NoError(t, flushErr, "kafkatest: produce %d records to %s: flush", n, topic)
}

// EndOffsets returns the end offset (the offset the next record will get)
// of every partition of topic.
func EndOffsets(t testing.TB, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	cl := newClient(t, brokers)
	defer cl.Close()
	ctx, cancel := opCtx(t)
	defer cancel()
	listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	require.NoError(t, err, "kafkatest: end offsets of %s", topic)
	require.NoError(t, listed.Error(), "kafkatest: end offsets of %s", topic)
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	if len(out) == 0 {
		t.Fatalf("kafkatest: end offsets: topic %s has no partitions; does it exist?", topic)
	}
	return out
}

// CommittedOffsets returns the offsets group has committed for topic, by
// partition. Partitions without a commit are absent.
func CommittedOffsets(t testing.TB, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	cl := newClient(t, brokers)
	defer cl.Close()
	ctx, cancel := opCtx(t)
	defer cancel()
	resps, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err == nil {
		err = resps.Error()
	}
	out := map[int32]int64{}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return out // a group that never committed, as some brokers report it
	}
	require.NoError(t, err, "kafkatest: committed offsets of group %s", group)
	resps.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

// ConsumeAll reads n records of topic from the start with a plain franz-go
// consumer group (a fresh group, no commits) and returns how long it took,
// from creating the client, so joining the group is included as it is for
// kasync's tailer. It is the "raw consume rate" baseline for benchmarks.
func ConsumeAll(t testing.TB, brokers []string, topic string, n int) time.Duration {
	t.Helper()
	group := fmt.Sprintf("kasynctest-consume-%08x", rand.Uint32())
	start := time.Now()
	cl := newClient(t, brokers,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	defer cl.Close()
	ctx, cancel := opCtx(t)
	defer cancel()
	got := 0
	for got < n {
		fs := cl.PollRecords(ctx, n-got)
		if ctx.Err() != nil {
			t.Fatalf("kafkatest: consumed %d of %d records of %s within %v", got, n, topic, Timeout)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Fatalf("kafkatest: consume %s/%d: %v", tp, p, err)
		})
		got += fs.NumRecords()
	}
	return time.Since(start)
}
