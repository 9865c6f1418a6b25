package tailer_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// benchRecords is how many 100-byte records each iteration reads.
const benchRecords = 200_000

// benchGroup names a fresh consumer group: the benchmark framework runs a benchmark
// more than once (b.N = 1 first), and a reused group would resume at the log end.
var benchGroups atomic.Int64

func benchGroup(kind, topic string) string {
	return kind + "-" + strconv.FormatInt(benchGroups.Add(1), 10) + "-" + topic
}

// BenchmarkPipeline produces benchRecords once, then reads them with a raw franz-go
// consumer group (the reading limit) and through the in-process pipeline, from the same
// broker in the same run: compare the rec/s of the two sub-benchmarks.
func BenchmarkPipeline(b *testing.B) {
	brokers := kafkatest.Brokers(b)
	topic := kafkatest.NewTopic(b, brokers, 12)
	value := make([]byte, 100)
	kafkatest.ProduceN(b, brokers, topic, benchRecords, func(i int) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i % 1000)), Value: value}
	})
	end := kafkatest.EndOffsets(b, brokers, topic)
	b.Run("raw-franz-go", func(b *testing.B) { benchRawConsume(b, brokers, topic) })
	b.Run("in-process", func(b *testing.B) { benchInProcess(b, brokers, topic, end) })
}

// benchRawConsume: a franz-go consumer group that only counts records.
func benchRawConsume(b *testing.B, brokers []string, topic string) {
	var total time.Duration
	for range b.N {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(benchGroup("raw", topic)),
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		n := 0
		for n < benchRecords {
			fs := cl.PollFetches(context.Background())
			n += fs.NumRecords()
		}
		total += time.Since(start)
		cl.Close()
	}
	b.ReportMetric(float64(benchRecords*b.N)/total.Seconds(), "rec/s")
}

// benchInProcess: tailer → in-process scheduler → no-op function → checkpoint, until
// every record succeeded; then the committed watermarks must be at the log end.
func benchInProcess(b *testing.B, brokers []string, topic string, end map[int32]int64) {
	exec := scheduler.ExecutorFunc(func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Success()
	})
	var total time.Duration
	for range b.N {
		total += runPipeline(b, brokers, topic, end, exec, tailer.OrderUnordered)
	}
	b.ReportMetric(float64(benchRecords*b.N)/total.Seconds(), "rec/s")
}

// BenchmarkOrdering reads the same records with a slow function (1 ms) in each
// ordering mode: unordered runs up to the function's concurrency at once, key order
// one record per key, partition order one record per partition.
func BenchmarkOrdering(b *testing.B) {
	const n = 4000
	brokers := kafkatest.Brokers(b)
	topic := kafkatest.NewTopic(b, brokers, 4)
	kafkatest.ProduceN(b, brokers, topic, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i % 200)), Value: []byte("v")}
	})
	end := kafkatest.EndOffsets(b, brokers, topic)
	slow := scheduler.ExecutorFunc(func(ctx context.Context, _ *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		time.Sleep(time.Millisecond)
		return scheduler.Success()
	})
	for _, o := range []tailer.Ordering{tailer.OrderUnordered, tailer.OrderKey, tailer.OrderPartition} {
		b.Run(string(o), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				total += runPipeline(b, brokers, topic, end, slow, o)
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "rec/s")
		})
	}
}

// runPipeline reads topic to end with a fresh group through a tailer keeping ordering
// o, an in-process scheduler (concurrency 64) running exec and an in-memory
// checkpoint store, and returns the time until every record succeeded. It fails the
// benchmark unless the committed watermarks are at end afterwards.
func runPipeline(b *testing.B, brokers []string, topic string, end map[int32]int64, exec scheduler.ExecutorFunc, o tailer.Ordering) time.Duration {
	var records int64
	for _, e := range end {
		records += e
	}
	ladder, err := delaystreams.NewLadder(delaystreams.DefaultRungs(), 0)
	if err != nil {
		b.Fatal(err)
	}
	router, err := delaystreams.NewRouter(kafkatest.Client(b, brokers), delaystreams.RouterConfig{
		Ladder: ladder, TopicPrefix: "kasync.delay", DeadLetter: "kasync.dead-letter",
		Policies: map[string]delaystreams.RetryPolicy{"fn": fixtureRetry}})
	if err != nil {
		b.Fatal(err)
	}
	newReader := delaystreams.NewSourceReader
	if o != tailer.OrderUnordered {
		newReader = delaystreams.NewOrderedSourceReader
	}
	reader, err := newReader(router, "fn", 0)
	if err != nil {
		b.Fatal(err)
	}
	s, err := scheduler.New(scheduler.Config{
		Functions: []scheduler.Function{{Name: "fn", Concurrency: 64, Timeout: time.Minute, Executor: exec}},
		Logger:    quietLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	store, err := checkpoint.OpenPebble(checkpoint.PebbleOptions{Dir: "cp", FS: vfs.NewMem(), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	group := benchGroup("pipe", topic)
	tl, err := tailer.New(tailer.Config{
		Name: "bench", Topic: topic, Function: "fn", Group: group, Ordering: o,
		ClientOpts: []kgo.Opt{kgo.SeedBrokers(brokers...)},
		Scheduler:  scheduler.NewLocal(s, 20000), Store: store, Reader: reader, Producer: nopProducer{},
		CommitInterval: 50 * time.Millisecond, Logger: quietLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- tl.Run(ctx) }()
	lastProgress, last := time.Now(), int64(-1)
	for {
		st := tl.Stats()
		if st.Succeeded >= records {
			break
		}
		if st.Succeeded != last {
			lastProgress, last = time.Now(), st.Succeeded
		} else if time.Since(lastProgress) > 20*time.Second {
			b.Fatalf("no progress for 20s: %+v; committed %v", st, kafkatest.CommittedOffsets(b, brokers, group, topic))
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	for p, c := range kafkatest.CommittedOffsets(b, brokers, group, topic) {
		if c != end[p] {
			b.Fatalf("partition %d committed %d, want %d", p, c, end[p])
		}
	}
	return took
}

type nopProducer struct{}

func (nopProducer) Produce(context.Context, []*kgo.Record) []error {
	panic("benchmark: nothing may be delayed or dead-lettered")
}
