package scheduler

import "github.com/prometheus/client_golang/prometheus"

// collector exports each function's live state and counters at scrape time. An attempt
// pays only for what the scheduler counts anyway, and for its duration: a clock read
// and two atomic adds (durations).
type collector struct {
	s                       *Scheduler
	limit, inflight, queued *prometheus.Desc
	workloads, duration     *prometheus.Desc
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
		workloads: prometheus.NewDesc("kasync_workloads_total",
			"Attempts of a function that ended, by outcome: success, retriable or fatal.",
			[]string{"function", "outcome"}, nil),
		duration: prometheus.NewDesc("kasync_workload_duration_seconds",
			"How long attempts of a function ran, from their start to their outcome (a timed-out attempt counts until its timeout).",
			fn, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.limit
	ch <- c.inflight
	ch <- c.queued
	ch <- c.workloads
	ch <- c.duration
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.s.names {
		fs := c.s.fns[name].stats()
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(fs.Limit), name)
		ch <- prometheus.MustNewConstMetric(c.inflight, prometheus.GaugeValue, float64(fs.Running), name)
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(fs.Queued), name)
		ch <- prometheus.MustNewConstMetric(c.workloads, prometheus.CounterValue, float64(fs.Succeeded), name, "success")
		ch <- prometheus.MustNewConstMetric(c.workloads, prometheus.CounterValue, float64(fs.Retriable), name, "retriable")
		ch <- prometheus.MustNewConstMetric(c.workloads, prometheus.CounterValue, float64(fs.Fatal), name, "fatal")
		buckets, count, sum := c.s.fns[name].durations.snapshot()
		ch <- prometheus.MustNewConstHistogram(c.duration, count, sum, buckets, name)
	}
}
