package kafkatest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestProduceNReadBackN(t *testing.T) {
	t.Parallel()
	const n = 2000
	brokers := Brokers(t)
	topic := NewTopic(t, brokers, 4)
	ProduceN(t, brokers, topic, n, nil)

	cl := Client(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	seen := make(map[int]bool, n)
	perPartition := map[int32]int64{}
	for len(seen) < n {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read %d of %d", len(seen), n)
		require.NoError(t, fs.Err())
		fs.EachRecord(func(r *kgo.Record) {
			i, err := strconv.Atoi(string(r.Key))
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("value-%d", i), string(r.Value))
			require.False(t, seen[i], "record %d read twice", i)
			seen[i] = true
			perPartition[r.Partition]++
		})
	}

	// Offsets start at 0, so each end offset is the partition's record count.
	ends := EndOffsets(t, brokers, topic)
	require.Len(t, ends, 4)
	require.Equal(t, perPartition, withoutZeros(ends))
}

func withoutZeros(m map[int32]int64) map[int32]int64 {
	out := map[int32]int64{}
	for p, o := range m {
		if o != 0 {
			out[p] = o
		}
	}
	return out
}

func TestProduceNWithGenerator(t *testing.T) {
	t.Parallel()
	brokers := Brokers(t)
	topic := NewTopic(t, brokers, 3)
	// A generator may leave Topic empty; ProduceN fills it in. Keys choose
	// partitions deterministically, so the same key always lands together.
	ProduceN(t, brokers, topic, 90, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte{byte(i % 2)}, Value: []byte("x")}
	})
	ends := EndOffsets(t, brokers, topic)
	var total int64
	nonEmpty := 0
	for _, o := range ends {
		total += o
		if o > 0 {
			nonEmpty++
			require.Zero(t, o%45, "each key's 45 records share one partition")
		}
	}
	require.Equal(t, int64(90), total)
	require.LessOrEqual(t, nonEmpty, 2)
}

func TestCommittedOffsets(t *testing.T) {
	t.Parallel()
	brokers := Brokers(t)
	topic := NewTopic(t, brokers, 3)
	other := NewTopic(t, brokers, 1)
	ProduceN(t, brokers, topic, 30, nil)

	const group = "g"
	require.Empty(t, CommittedOffsets(t, brokers, group, topic))

	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: topic, Partition: 0, At: 3, LeaderEpoch: -1})
	o.Add(kadm.Offset{Topic: topic, Partition: 2, At: 5, LeaderEpoch: -1})
	o.Add(kadm.Offset{Topic: other, Partition: 0, At: 1, LeaderEpoch: -1})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, err := Admin(t, brokers).CommitOffsets(ctx, group, o)
	require.NoError(t, err)
	require.NoError(t, resp.Error())

	require.Equal(t, map[int32]int64{0: 3, 2: 5}, CommittedOffsets(t, brokers, group, topic))
	require.Equal(t, map[int32]int64{0: 1}, CommittedOffsets(t, brokers, group, other))
}

func TestNewTopicNames(t *testing.T) {
	t.Parallel()
	brokers := Brokers(t)
	a := NewTopic(t, brokers, 1)
	b := NewTopic(t, brokers, 2)
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, "kasynctest-TestNewTopicNames-"), a)

	t.Run("sub/test.with odd:chars/"+strings.Repeat("x", 300), func(t *testing.T) {
		name := NewTopic(t, brokers, 1)
		require.LessOrEqual(t, len(name), 249)
		for _, r := range name {
			ok := r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
			require.True(t, ok, "%q in %q", r, name)
		}
	})

	details, err := Admin(t, brokers).ListTopics(t.Context(), a, b)
	require.NoError(t, err)
	require.Len(t, details[a].Partitions, 1)
	require.Len(t, details[b].Partitions, 2)
}

func TestParseBrokers(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"a:1", "b:2"}, parseBrokers(" a:1, ,b:2,"))
	require.Empty(t, parseBrokers(" , "))
}

func TestBrokersFromEnv(t *testing.T) {
	t.Setenv(EnvBrokers, "h1:9092,h2:9092")
	require.Equal(t, []string{"h1:9092", "h2:9092"}, Brokers(t))
}

func TestEmbeddedBrokerIsTracked(t *testing.T) {
	if _, ok := os.LookupEnv(EnvBrokers); ok {
		t.Skip("runs only against the embedded broker")
	}
	t.Parallel()
	var addrs []string
	t.Run("inner", func(t *testing.T) {
		addrs = Brokers(t)
		require.True(t, isEmbedded(addrs))
	})
	require.False(t, isEmbedded(addrs), "forgotten once its test ended")
	require.False(t, isEmbedded(nil))
}

func TestConsumeAll(t *testing.T) {
	t.Parallel()
	brokers := Brokers(t)
	topic := NewTopic(t, brokers, 3)
	ProduceN(t, brokers, topic, 500, nil)
	d := ConsumeAll(t, brokers, topic, 500)
	require.Positive(t, d)
}

// BenchmarkRawConsume is the baseline for kasync's tailer benchmarks: a plain
// franz-go consumer group reading b.N 100-byte records from 12 partitions.
func BenchmarkRawConsume(b *testing.B) {
	brokers := Brokers(b)
	topic := NewTopic(b, brokers, 12)
	value := []byte(strings.Repeat("v", 100))
	ProduceN(b, brokers, topic, b.N, func(i int) *kgo.Record {
		return &kgo.Record{Key: strconv.AppendInt(nil, int64(i), 10), Value: value}
	})
	b.ResetTimer()
	d := ConsumeAll(b, brokers, topic, b.N)
	b.ReportMetric(float64(b.N)/d.Seconds(), "records/s")
}
