package kafka

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/broker"
)

// clientSeries returns the value of series name in reg by client label; a series
// without one fails the test.
func clientSeries(t *testing.T, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			client := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "client" {
					client = l.GetValue()
				}
			}
			require.NotEmpty(t, client, "%s has a client label", name)
			out[client] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

// TestMetricsOfSeveralClients: two clients export their metrics on one registry, told
// apart by the client label; what one produces is counted on its own series, and its
// series go away when it closes.
func TestMetricsOfSeveralClients(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(broker.Options{
		Listen:     "127.0.0.1:0",
		Partitions: 1,
		Topics:     map[string]int32{"existing": 1},
		Logger:     slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })

	reg := prometheus.NewRegistry()
	cfg := ClientConfig{Brokers: b.Addrs()}
	prod, err := NewClient(cfg, append(ProducerOpts(), Metrics(reg, "producer"))...)
	require.NoError(t, err)
	defer prod.Close()
	other, err := NewClient(cfg, Metrics(reg, "other"))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, prod.ProduceSync(ctx, &kgo.Record{Topic: "existing", Value: []byte("x")}).FirstErr())

	// kgo runs the produce hooks on a goroutine of their own, after the ack.
	require.Eventually(t, func() bool {
		return clientSeries(t, reg, "kasync_kafka_produce_records_total")["producer"] == 1
	}, 10*time.Second, 5*time.Millisecond, "the producer's record is counted on its series")
	require.Equal(t, map[string]float64{"producer": 1}, clientSeries(t, reg, "kasync_kafka_produce_records_total"), "and only there")
	require.Contains(t, clientSeries(t, reg, "kasync_kafka_buffered_produce_records_total"), "other")
	other.Close()
	require.NotContains(t, clientSeries(t, reg, "kasync_kafka_buffered_produce_records_total"), "other",
		"a closed client's series are unregistered")
	require.Contains(t, clientSeries(t, reg, "kasync_kafka_buffered_produce_records_total"), "producer")
}
