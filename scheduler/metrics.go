package scheduler

import "github.com/prometheus/client_golang/prometheus"

// collector exports each function's live state at scrape time, so attempts pay
// nothing for metrics.
type collector struct {
	s                       *Scheduler
	limit, inflight, queued *prometheus.Desc
}

func newCollector(s *Scheduler) *collector {
	fn := []string{"function"}
	return &collector{
		s: s,
		limit: prometheus.NewDesc("kasync_concurrency_limit",
			"The adaptive concurrency limit of a function: the most attempts it may run at once now (at most its concurrency; it shrinks when the downstream is overloaded or times out).",
			fn, nil),
		inflight: prometheus.NewDesc("kasync_inflight",
			"Attempts of a function running now.", fn, nil),
		queued: prometheus.NewDesc("kasync_queued",
			"Workloads of a function admitted and waiting to start.", fn, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.limit
	ch <- c.inflight
	ch <- c.queued
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.s.names {
		fs := c.s.fns[name].stats()
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(fs.Limit), name)
		ch <- prometheus.MustNewConstMetric(c.inflight, prometheus.GaugeValue, float64(fs.Running), name)
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(fs.Queued), name)
	}
}
