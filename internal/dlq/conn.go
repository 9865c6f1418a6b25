package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/kafka"
)

// ReachTimeout bounds Open's first request, so that brokers that cannot be reached are
// an error instead of a hang.
var ReachTimeout = 15 * time.Second

// DeliveryTimeout bounds how long a redriven record or a mark may wait for the broker
// before it counts as failed (and, for a record, is not marked).
var DeliveryTimeout = 30 * time.Second

// Conn reads a dead-letter topic and its ledger, and redrives. Each read uses a client
// of its own, a direct consumer (no group, no commits) closed when the read ends;
// produces and admin requests use one client that Close closes. A Conn is for one
// goroutine at a time.
type Conn struct {
	cc      kafka.ClientConfig
	topic   string
	cl      *kgo.Client
	adm     *kadm.Client
	log     *slog.Logger
	topicID string
}

// Open connects to the cluster of cc and checks that the dead-letter topic exists: a
// missing one is ErrBadInput. cc.Logger, when set, also receives the package's logs.
func Open(ctx context.Context, cc kafka.ClientConfig, topic string) (*Conn, error) {
	log := cc.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl, err := kafka.NewClient(cc, append(kafka.ProducerOpts(), kgo.RecordDeliveryTimeout(DeliveryTimeout))...)
	if err != nil {
		return nil, badInputf("%v", err)
	}
	c := &Conn{cc: cc, topic: topic, cl: cl, adm: kadm.NewClient(cl), log: log}
	reachCtx, cancel := context.WithTimeout(ctx, ReachTimeout)
	defer cancel()
	details, err := c.adm.ListTopics(reachCtx, topic)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("dlq: cannot reach the cluster at %s: %w", c.brokers(), err)
	}
	d, ok := details[topic]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		cl.Close()
		return nil, badInputf("dead-letter topic %s does not exist on %s; kasync nodes create it at start (dead_letter.topic); check --topic or the config", topic, c.brokers())
	}
	if d.Err != nil {
		cl.Close()
		return nil, fmt.Errorf("dlq: topic %s: %w", topic, d.Err)
	}
	if d.ID != (kadm.TopicID{}) {
		c.topicID = d.ID.String()
	}
	return c, nil
}

// Close closes the producer and admin client.
func (c *Conn) Close() { c.cl.Close() }

// Topic is the dead-letter topic.
func (c *Conn) Topic() string { return c.topic }

// Ledger is the ledger topic of the dead-letter topic.
func (c *Conn) Ledger() string { return LedgerTopic(c.topic) }

func (c *Conn) brokers() string { return strings.Join(c.cc.Brokers, ",") }

// Scan calls fn for every record of the dead-letter topic from the start of each
// partition to its end as of the call, partition by partition in offset order
// (partitions interleaved). It stops at fn's first error and returns it.
func (c *Conn) Scan(ctx context.Context, fn func(*Entry) error) error {
	return c.scan(ctx, c.topic, func(r *kgo.Record) error { return fn(NewEntry(r)) })
}

// Tail calls fn for the last n records (at most) of every partition of the dead-letter
// topic, as of the call, partition by partition in offset order (partitions
// interleaved): the latest dead letters, for status views, without reading the whole
// topic. It stops at fn's first error and returns it.
func (c *Conn) Tail(ctx context.Context, n int, fn func(*Entry) error) error {
	if n <= 0 {
		return nil
	}
	from := func(start, end int64) int64 { return max(start, end-int64(n)) }
	return c.scanFrom(ctx, c.topic, from, func(r *kgo.Record) error { return fn(NewEntry(r)) })
}

// bounds returns the start and end offsets of every partition of topic.
func (c *Conn) bounds(ctx context.Context, topic string) (starts, ends map[int32]int64, err error) {
	list := func(f func(context.Context, ...string) (kadm.ListedOffsets, error), what string) (map[int32]int64, error) {
		listed, err := f(ctx, topic)
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("dlq: %s offsets of %s: %w", what, topic, err)
		}
		out := map[int32]int64{}
		listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		return out, nil
	}
	if starts, err = list(c.adm.ListStartOffsets, "start"); err != nil {
		return nil, nil, err
	}
	if ends, err = list(c.adm.ListEndOffsets, "end"); err != nil {
		return nil, nil, err
	}
	return starts, ends, nil
}

// scan reads topic from its start offsets to its end offsets as of the call.
func (c *Conn) scan(ctx context.Context, topic string, fn func(*kgo.Record) error) error {
	return c.scanFrom(ctx, topic, func(start, _ int64) int64 { return start }, fn)
}

// scanFrom reads each partition of topic from first(start, end) to its end offset as
// of the call; first must return an offset in [start, end].
func (c *Conn) scanFrom(ctx context.Context, topic string, first func(start, end int64) int64, fn func(*kgo.Record) error) error {
	starts, ends, err := c.bounds(ctx, topic)
	if err != nil {
		return err
	}
	todo := map[int32]int64{} // partition → end offset still to reach
	from := map[int32]kgo.Offset{}
	for p, end := range ends {
		if at := first(starts[p], end); end > at {
			todo[p] = end
			from[p] = kgo.NewOffset().At(at)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	cl, err := kafka.NewClient(c.cc, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}))
	if err != nil {
		return fmt.Errorf("dlq: read %s: %w", topic, err)
	}
	defer cl.Close()
	for len(todo) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dlq: read %s: %w", topic, err)
		}
		var fetchErr error
		fs.EachError(func(t string, p int32, err error) {
			var loss *kgo.ErrDataLoss
			if errors.As(err, &loss) { // retention moved the start: read on from there
				c.log.Warn("dlq: records deleted while reading", "topic", t, "partition", p, "err", err)
				return
			}
			if fetchErr == nil {
				fetchErr = fmt.Errorf("dlq: read %s/%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		var done []int32
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			end, ok := todo[r.Partition]
			if !ok || r.Offset >= end {
				continue // written after the scan began
			}
			if err := fn(r); err != nil {
				return err
			}
			if r.Offset+1 >= end {
				delete(todo, r.Partition)
				done = append(done, r.Partition)
			}
		}
		if len(done) > 0 {
			cl.PauseFetchPartitions(map[string][]int32{topic: done})
		}
	}
	return nil
}

// Get reads the dead letter at p. A partition or offset the topic does not hold is
// ErrBadInput, with what it does hold.
func (c *Conn) Get(ctx context.Context, p Pos) (*Entry, error) {
	starts, ends, err := c.bounds(ctx, c.topic)
	if err != nil {
		return nil, err
	}
	end, ok := ends[p.Partition]
	if !ok {
		return nil, badInputf("%s: partition %d does not exist; %s has partitions 0 to %d", p, p.Partition, c.topic, len(ends)-1)
	}
	start := starts[p.Partition]
	switch {
	case start >= end:
		return nil, badInputf("%s: partition %d of %s holds no records", p, p.Partition, c.topic)
	case p.Offset < start || p.Offset >= end:
		return nil, badInputf("%s: offset %d is not in partition %d of %s, which holds offsets %d to %d", p, p.Offset, p.Partition, c.topic, start, end-1)
	}
	var found *kgo.Record
	from := map[string]map[int32]kgo.Offset{c.topic: {p.Partition: kgo.NewOffset().At(p.Offset)}}
	cl, err := kafka.NewClient(c.cc, kgo.ConsumePartitions(from))
	if err != nil {
		return nil, fmt.Errorf("dlq: read %s/%s: %w", c.topic, p, err)
	}
	defer cl.Close()
	for found == nil {
		fs := cl.PollRecords(ctx, 1)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("dlq: read %s/%s: %w", c.topic, p, err)
		}
		if err := fs.Err(); err != nil {
			return nil, fmt.Errorf("dlq: read %s/%s: %w", c.topic, p, err)
		}
		for it := fs.RecordIter(); !it.Done() && found == nil; {
			found = it.Next()
		}
	}
	if found.Offset != p.Offset {
		return nil, badInputf("%s: there is no record at offset %d of partition %d (compacted away, or a transaction marker); the next is at %d",
			p, p.Offset, p.Partition, found.Offset)
	}
	return NewEntry(found), nil
}

// ReadLedger reads the whole ledger topic. A missing ledger topic is an empty ledger
// (exists false): nothing was redriven yet. Ledger records that cannot be read are
// logged, once with their count, and skipped.
func (c *Conn) ReadLedger(ctx context.Context) (l *Ledger, exists bool, err error) {
	l = NewLedger(c.topicID)
	ledger := c.Ledger()
	details, err := c.adm.ListTopics(ctx, ledger)
	if err != nil {
		return nil, false, fmt.Errorf("dlq: ledger %s: %w", ledger, err)
	}
	if d, ok := details[ledger]; !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return l, false, nil
	} else if d.Err != nil {
		return nil, false, fmt.Errorf("dlq: ledger %s: %w", ledger, d.Err)
	}
	var bad int
	var firstBad error
	err = c.scan(ctx, ledger, func(r *kgo.Record) error {
		if err := l.Apply(r.Key, r.Value); err != nil {
			bad++
			if firstBad == nil {
				firstBad = err
			}
		}
		return nil
	})
	if err != nil {
		return nil, true, err
	}
	if bad > 0 {
		c.log.Warn("dlq: ledger records that are not marks were skipped", "topic", ledger, "count", bad, "first", firstBad)
	}
	if l.Stale() > 0 {
		c.log.Warn("dlq: ledger marks of an earlier dead-letter topic of the same name were ignored", "topic", ledger, "count", l.Stale())
	}
	return l, true, nil
}

// CheckTargets refuses (ErrBadInput) a plan whose target topics do not all exist, so
// that a redrive produces nothing rather than a part. to is the --to flag, if given.
func (c *Conn) CheckTargets(ctx context.Context, plan *Plan, to string) error {
	targets := plan.Targets()
	if len(targets) == 0 {
		return nil
	}
	details, err := c.adm.ListTopics(ctx, targets...)
	if err != nil {
		return fmt.Errorf("dlq: check target topics %s: %w", strings.Join(targets, ", "), err)
	}
	var missing []string
	for _, t := range targets {
		d, ok := details[t]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			missing = append(missing, t)
		case d.Err != nil:
			return fmt.Errorf("dlq: target topic %s: %w", t, d.Err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	if to != "" {
		return badInputf("--to %s: the topic does not exist on %s; create it first (kasync creates no source or ingest topics) or name an existing topic; nothing was redriven", to, c.brokers())
	}
	return badInputf("source topic %s (from %s) does not exist on %s; create it, or send the records elsewhere with --to TOPIC; nothing was redriven",
		strings.Join(missing, ", "), "kasync-origin", c.brokers())
}

// EnsureLedger creates the ledger topic when it is missing: one partition,
// cleanup.policy=compact, so it keeps the last mark of every position for good. An
// existing ledger that is not compacted is used, with a warning: its marks expire.
func (c *Conn) EnsureLedger(ctx context.Context) error {
	ledger := c.Ledger()
	compact := "compact"
	resp, err := c.adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, ledger)
	switch {
	case err == nil:
		c.log.Info("dlq: created the ledger topic of redriven records", "topic", ledger, "partitions", resp.NumPartitions)
		return nil
	case errors.Is(err, kerr.TopicAlreadyExists):
	default:
		return fmt.Errorf("dlq: create ledger topic %s: %w; create it yourself (1 partition, cleanup.policy=compact)", ledger, err)
	}
	cfgs, err := c.adm.DescribeTopicConfigs(ctx, ledger)
	if err != nil {
		c.log.Warn("dlq: cannot check the ledger topic's cleanup.policy", "topic", ledger, "err", err)
		return nil
	}
	rc, err := cfgs.On(ledger, nil)
	if err != nil || rc.Err != nil {
		c.log.Warn("dlq: cannot check the ledger topic's cleanup.policy", "topic", ledger, "err", errors.Join(err, rc.Err))
		return nil
	}
	for _, cfg := range rc.Configs {
		if cfg.Key == "cleanup.policy" && (cfg.Value == nil || !strings.Contains(*cfg.Value, "compact")) {
			c.log.Warn("dlq: the ledger topic is not compacted: its marks expire with retention, and the records they mark can then be redriven again; set cleanup.policy=compact",
				"topic", ledger)
		}
	}
	return nil
}
