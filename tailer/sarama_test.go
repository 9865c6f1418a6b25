package tailer_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cockroachdb/pebble/v2/vfs"
	metrics "github.com/rcrowley/go-metrics"
	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
)

// TestSaramaProducedEventsRun: events produced by an independent client, sarama, with
// its default hash partitioner, record headers and lz4 compression, all run, with their
// keys, headers and the partitions sarama chose.
func TestSaramaProducedEventsRun(t *testing.T) {
	t.Parallel()
	const n = 1000
	f := newFixture(t, 6)

	// sarama's meters start a global goroutine that never stops; nil meters do not.
	metrics.UseNilMetrics = true
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Compression = sarama.CompressionLZ4
	prod, err := sarama.NewSyncProducer(f.brokers, cfg)
	require.NoError(t, err)
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{
			Topic:   f.topic,
			Key:     sarama.StringEncoder("user-" + strconv.Itoa(i%50)),
			Value:   sarama.StringEncoder("s-" + strconv.Itoa(i)),
			Headers: []sarama.RecordHeader{{Key: []byte("trace-id"), Value: []byte("t-" + strconv.Itoa(i))}},
		}
	}
	require.NoError(t, prod.SendMessages(msgs))
	require.NoError(t, prod.Close())
	wantPartition := map[string]int32{}
	for i, m := range msgs {
		wantPartition["s-"+strconv.Itoa(i)] = m.Partition
	}
	end := kafkatest.EndOffsets(t, f.brokers, f.topic)

	type seen struct {
		key, trace string
		partition  int32
	}
	var mu sync.Mutex
	got := map[string]seen{}
	exec := func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		s := seen{key: string(w.Key)}
		for _, h := range w.Headers {
			if h.Key == "trace-id" {
				s.trace = string(h.Value)
			}
		}
		s.partition, _ = partitionOffset(t, w.ID)
		mu.Lock()
		got[string(w.Payload)] = s
		mu.Unlock()
		return scheduler.Success()
	}
	tcfg := f.config("sarama", localScheduler(t, exec, 0), newStore(t, vfs.NewMem()))
	r := start(t, tcfg)
	f.waitCommitted(t, tcfg.Group, atEnd(end))
	r.stop(t)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, n)
	for i := range n {
		v := "s-" + strconv.Itoa(i)
		require.Equal(t, seen{key: "user-" + strconv.Itoa(i%50), trace: "t-" + strconv.Itoa(i), partition: wantPartition[v]}, got[v])
	}
}
