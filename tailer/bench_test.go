package tailer_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// benchRecords is how many 100-byte records each iteration reads.
const benchRecords = 200_000

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
	for i := 0; i < b.N; i++ {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("raw-"+strconv.Itoa(i)+"-"+topic),
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		n := 0
		for n < benchRecords {
			fs := cl.PollFetches(context.Background())
			n += fs.NumRecords()
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "rec/s")
		cl.Close()
	}
}

// benchInProcess: tailer → in-process scheduler → no-op function → checkpoint, until
// every record succeeded; then the committed watermarks must be at the log end.
func benchInProcess(b *testing.B, brokers []string, topic string, end map[int32]int64) {
	exec := scheduler.ExecutorFunc(func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Success()
	})
	for i := 0; i < b.N; i++ {
		s, err := scheduler.New(scheduler.Config{
			Functions: []scheduler.Function{{Name: "fn", Concurrency: 64, Timeout: time.Minute, Executor: exec}},
			Logger:    quietLogger(),
		})
		if err != nil {
			b.Fatal(err)
		}
		store, err := checkpoint.OpenPebble(checkpoint.PebbleOptions{Dir: "cp", FS: vfs.NewMem(), Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		group := "pipe-" + strconv.Itoa(i) + "-" + topic
		tl, err := tailer.New(tailer.Config{
			Name: "bench", Topic: topic, Function: "fn", Group: group,
			ClientOpts: []kgo.Opt{kgo.SeedBrokers(brokers...)},
			Scheduler:  scheduler.NewLocal(s, 20000), Store: store, DeadLetter: nopDeadLetter{},
			CommitInterval: 50 * time.Millisecond, Logger: quietLogger(),
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		start := time.Now()
		go func() { errc <- tl.Run(ctx) }()
		for tl.Stats().Succeeded < benchRecords {
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start)
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		for p, c := range kafkatest.CommittedOffsets(b, brokers, group, topic) {
			if c != end[p] {
				b.Fatalf("partition %d committed %d, want %d", p, c, end[p])
			}
		}
		b.ReportMetric(float64(benchRecords)/elapsed.Seconds(), "rec/s")
		_ = s.Close()
		_ = store.Close()
	}
}

type nopDeadLetter struct{}

func (nopDeadLetter) Send(_ context.Context, letters []tailer.Letter) []error {
	panic("benchmark: nothing may be dead-lettered")
}
