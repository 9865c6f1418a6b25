package node_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	kruntime "github.com/kasync/kasync/runtime"
)

// BenchmarkDelayLateness: every one of 5,000 events fails its first attempt at once
// (a burst into the rungs) with a 100ms backoff on a 20ms/50ms/200ms ladder; it reports
// the lateness of the retries (due time → the function's start) as p50-ms and p99-ms,
// and fails if any retry started before its due time.
func BenchmarkDelayLateness(b *testing.B) {
	const n = 5000
	for range b.N {
		brokers := kafkatest.Brokers(b)
		topic := kafkatest.NewTopic(b, brokers, 4)
		end := produce(b, brokers, topic, n)
		cfg := testConfig(b, brokers, topic, func(c *config.Config) {
			c.Functions[0].Retry = config.Retry{MaxAttempts: 3, Backoff: []config.Duration{config.Duration(100 * time.Millisecond)}}
			c.StormGuard.Disabled = true // every first attempt fails: the ladder, not the guard, is measured
		})
		var log runLog
		reg := kruntime.NewRegistry()
		reg.MustRegister("fn", func(_ context.Context, task *kruntime.Task) error {
			r := run{id: task.ID, attempt: task.Attempt, start: time.Now(), ok: task.Attempt > 1}
			log.add(string(task.Payload), r)
			if !r.ok {
				return fmt.Errorf("first attempt fails")
			}
			return nil
		})
		nd := start(b, node.Options{Config: cfg, Registry: reg})
		deadline := time.Now().Add(2 * time.Minute)
		for log.succeeded() < n {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d events succeeded in 2 minutes", log.succeeded(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		waitCommitted(b, brokers, cfg.Tailers[0].Group, topic, end)
		nd.stop(b)

		dues := map[string]time.Time{}
		for _, r := range readRungs(b, brokers, cfg) {
			dues[r.origin] = r.due
		}
		var lateness []time.Duration
		for payload, rs := range log.snapshot() {
			for _, r := range rs {
				if r.attempt != 2 {
					continue
				}
				due, ok := dues[r.id]
				if !ok {
					b.Fatalf("%s: no rung record for %s", payload, r.id)
				}
				if r.start.Before(due) {
					b.Fatalf("%s started %s before its due time", payload, due.Sub(r.start))
				}
				lateness = append(lateness, r.start.Sub(due))
			}
		}
		b.ReportMetric(float64(percentile(lateness, 50))/float64(time.Millisecond), "p50-ms")
		b.ReportMetric(float64(percentile(lateness, 99))/float64(time.Millisecond), "p99-ms")
		b.ReportMetric(float64(percentile(lateness, 100))/float64(time.Millisecond), "max-ms")
	}
}

// BenchmarkPoisonPill: 50,000 events through one node, without and with one
// always-failing event per 10,000 (which goes through the ladder to the dead letter);
// compare the events/s of the two sub-benchmarks (the target is ≥ 90%).
func BenchmarkPoisonPill(b *testing.B) {
	const n = 50_000
	for _, poisoned := range []bool{false, true} {
		name := "clean"
		if poisoned {
			name = "one-per-10000"
		}
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				brokers := kafkatest.Brokers(b)
				topic := kafkatest.NewTopic(b, brokers, 8)
				end := produce(b, brokers, topic, n)
				cfg := testConfig(b, brokers, topic)
				var done atomic.Int64
				reg := kruntime.NewRegistry()
				reg.MustRegister("fn", func(_ context.Context, task *kruntime.Task) error {
					if poisoned && mustAtoi(strings.TrimPrefix(string(task.Payload), "e-"))%10_000 == 5 {
						return fmt.Errorf("poison")
					}
					if task.Attempt == 1 {
						done.Add(1)
					}
					return nil
				})
				began := time.Now()
				nd := start(b, node.Options{Config: cfg, Registry: reg})
				want := int64(n)
				if poisoned {
					want -= n / 10_000
				}
				deadline := time.Now().Add(2 * time.Minute)
				for done.Load() < want {
					if time.Now().After(deadline) {
						b.Fatalf("only %d of %d events succeeded in 2 minutes", done.Load(), want)
					}
					time.Sleep(time.Millisecond)
				}
				total += time.Since(began)
				waitCommitted(b, brokers, cfg.Tailers[0].Group, topic, end)
				nd.stop(b)
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "events/s")
		})
	}
}
