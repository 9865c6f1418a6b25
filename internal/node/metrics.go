package node

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kasync/kasync/tailer"
)

// lagCollector exports the lag of the node's source tailers at scrape time:
// kasync_tailer_lag_records and kasync_tailer_lag_seconds, by tailer and partition.
// Delay readers are left out: their records wait on purpose (kasync_delay_* is theirs).
type lagCollector struct {
	tailers          []*tailer.Tailer
	records, seconds *prometheus.Desc
}

func newLagCollector(tailers []*tailer.Tailer) *lagCollector {
	labels := []string{"tailer", "partition"}
	return &lagCollector{
		tailers: tailers,
		records: prometheus.NewDesc("kasync_tailer_lag_records",
			"Records of a source partition not done yet: its log end, as of the latest fetch with records, minus the tailer's watermark.",
			labels, nil),
		seconds: prometheus.NewDesc("kasync_tailer_lag_seconds",
			"How long ago the oldest record read and not done on a source partition was produced, by its timestamp; 0 when none is.",
			labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.seconds
}

// Collect implements prometheus.Collector.
func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.tailers {
		for _, l := range t.Lag() {
			p := strconv.Itoa(int(l.Partition))
			ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(l.Records), t.Name(), p)
			ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, l.Age.Seconds(), t.Name(), p)
		}
	}
}
