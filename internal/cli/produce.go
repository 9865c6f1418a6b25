package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/kafka"
)

// maxLine is the longest line `kasync produce` accepts as one record.
const maxLine = 16 << 20

func runProduce(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "produce", "--topic T [--brokers ADDRS] [--key K]")
	brokers := f.String("brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	topic := f.String("topic", "", "topic to produce to (required)")
	key := f.String("key", "", "key of every record (default: no key)")
	log, err := f.setup(e, args)
	if err != nil {
		return err
	}
	if *topic == "" {
		return usagef("--topic is required")
	}
	cc := kafka.ClientConfig{Brokers: strings.Split(*brokers, ","), Logger: log}
	opts, err := cc.Opts()
	if err != nil {
		return usageError{err}
	}
	cl, err := kgo.NewClient(append(opts, append(kafka.ProducerOpts(), kgo.RecordDeliveryTimeout(30*time.Second))...)...)
	if err != nil {
		return usagef("--brokers: %w", err)
	}
	defer cl.Close()
	if err := checkTopic(ctx, kadm.NewClient(cl), *topic, *brokers); err != nil {
		return err
	}

	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		n        int
	)
	sc := bufio.NewScanner(e.stdin)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		rec := &kgo.Record{Topic: *topic, Value: append([]byte(nil), sc.Bytes()...)}
		if *key != "" {
			rec.Key = []byte(*key)
		}
		wg.Add(1)
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
		n++
	}
	scanErr := sc.Err()
	wg.Wait()
	if scanErr != nil {
		return fmt.Errorf("reading standard input after %d records: %w (lines are limited to %d MiB)", n, scanErr, maxLine>>20)
	}
	if firstErr != nil {
		return fmt.Errorf("producing to %s: %w", *topic, firstErr)
	}
	fmt.Fprintf(e.stderr, "produced %d records to %s\n", n, *topic)
	return nil
}

// checkTopic fails early, with the fix, when the topic does not exist: brokers with
// auto-creation off (the embedded one among them) would otherwise retry until timeout.
func checkTopic(ctx context.Context, adm *kadm.Client, topic, brokers string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("--brokers %s: cannot reach the cluster: %w", brokers, err)
	}
	d, ok := details[topic]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return usagef("--topic %s does not exist on %s; create it first (kasync dev creates its tailers' topics; kasync broker --topics %s:3)", topic, brokers, topic)
	}
	if d.Err != nil {
		return fmt.Errorf("--topic %s: %w", topic, d.Err)
	}
	return nil
}
