package kafka

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// MetricsNamespace and MetricsSubsystem prefix the client metrics of Metrics:
// kasync_kafka_produce_bytes_total, kasync_kafka_fetch_records_total, ...
const (
	MetricsNamespace = "kasync"
	MetricsSubsystem = "kafka"
)

// Metrics returns the option that exports one client's franz-go metrics (plugin/kprom)
// on reg, under kasync_kafka_* with the constant label client=name: connections, bytes
// and errors by broker (node_id), bytes and records produced and fetched by broker and
// topic (kasync_kafka_produce_bytes_total, kasync_kafka_produce_records_total,
// kasync_kafka_fetch_bytes_total, kasync_kafka_fetch_records_total) and what the client
// buffers. Counters are updated per request or batch, never per record. The series are
// registered when the client is created and unregistered when it closes.
//
// Each client of one registry needs its own name while it is open: kprom registers
// from inside kgo.NewClient, and a duplicate registration panics there.
func Metrics(reg prometheus.Registerer, name string) kgo.Opt {
	return kgo.WithHooks(kprom.NewMetrics(MetricsNamespace,
		kprom.Subsystem(MetricsSubsystem),
		kprom.Registerer(reg),
		kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.UncompressedBytes, kprom.Records),
		kprom.WithStaticLabel(prometheus.Labels{"client": name}),
	))
}
