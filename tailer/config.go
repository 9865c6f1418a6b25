package tailer

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/checkpoint"
)

// Fetch size bounds (Config.FetchMaxBytes).
const (
	DefaultFetchMaxBytes int32 = 4 << 20
	MinFetchMaxBytes     int32 = 1 << 10
)

// Start says where a group with no checkpoint begins reading.
type Start string

const (
	StartEarliest Start = "earliest"
	StartLatest   Start = "latest"
)

// OffsetsLost says what a tailer does when the offset it would resume a partition from
// is below the partition's log start: retention (or DeleteRecords) removed records it
// never ran. Either way it logs an error naming the partition and how many records were
// lost, and counts them in Stats.LostByRetention; it never skips to the log end.
type OffsetsLost string

const (
	// OffsetsLostEarliest (the default) resumes at the log start: every record that
	// still exists runs.
	OffsetsLostEarliest OffsetsLost = "earliest"
	// OffsetsLostFail stops the tailer (Run returns an ErrOffsetsLost) for an operator
	// to decide, reading nothing of the partition.
	OffsetsLostFail OffsetsLost = "fail"
)

// Ordering says which records of a partition may run at the same time (DESIGN.md,
// "Ordering modes").
type Ordering string

const (
	// OrderUnordered (the default): any records run at once, up to the window.
	OrderUnordered Ordering = "unordered"
	// OrderKey: records with the same key run one at a time, in offset order. A
	// record whose key is busy waits, in memory and in the window, behind the record
	// running or retrying in place; other keys flow. Records with no key (a null key)
	// have no order to keep and run at once.
	OrderKey Ordering = "key"
	// OrderPartition: one record of a partition at a time, in offset order.
	OrderPartition Ordering = "partition"
)

// Config configures one tailer: one consumer group reading one topic for one function.
type Config struct {
	Name     string // the tailer's name, used in logs and as the push stream's name
	Topic    string
	Function string // the function its records run, for logs and the storm guard; "" for a rung reader
	Group    string // consumer group; default "kasync.<Name>"
	Start    Start  // default StartEarliest
	// OffsetsLost is the policy for a resume offset below the log start (default
	// OffsetsLostEarliest).
	OffsetsLost OffsetsLost
	// Ordering is which records may run at once (default OrderUnordered). With
	// OrderKey or OrderPartition the Reader should retry failures in place (ActionRetry
	// with Until), since a record on a delay rung would let later ones overtake it.
	Ordering Ordering

	// ClientOpts connect to the cluster (seed brokers, TLS, SASL, logger). The tailer adds
	// the consumer-group options itself and rejects none of these.
	ClientOpts []kgo.Opt

	// MaxRecords is the most records handed to the scheduler in one push (default 500).
	MaxRecords int
	// MaxWait is how long a fetch waits on the broker for records (default 10ms).
	MaxWait time.Duration
	// FetchMaxBytes bounds one fetch response (default 4 MiB; Kafka's own default is
	// 50 MiB). The client buffers a whole response before handing out its first record
	// and fetches again only once it is taken, so the bound is the tailer's fetch
	// memory and the time its first record waits. On a 1M-record backlog (kasync bench)
	// 4 MiB took peak RSS from ~370 to ~170 MiB with no loss of throughput.
	FetchMaxBytes int32
	// MaxInFlight bounds the records read and not yet done, over all partitions
	// (default 10000). Polling stops while it is reached.
	MaxInFlight int
	// PartitionMaxInFlight is the per-partition share: a partition that reaches it is
	// paused until room frees (default MaxInFlight). Records already fetched when the
	// pause takes effect are still taken, so a partition may pass it by one poll;
	// MaxInFlight is the strict bound.
	PartitionMaxInFlight int
	// RevokeTimeout is how long a revoked partition waits for its in-flight records
	// before its checkpoint is committed and it is released (default 10s).
	RevokeTimeout time.Duration

	// CommitInterval is how often checkpoints are written (default 1s); CommitCount
	// completed records since the last commit request one earlier (default 10000). The
	// tailer reads no more once CommitCount completions wait for a sync (on top of
	// MaxInFlight), so a crash re-runs at most MaxInFlight + CommitCount records. The
	// early write does not wait for the store's next sync slot
	// (checkpoint.PebbleOptions.MinSyncInterval) when the store is a
	// checkpoint.UrgentFlusher, so the bound costs a sync per CommitCount completions,
	// not a wait; with another store it may cap the tailer near (MaxInFlight +
	// CommitCount) records per sync.
	CommitInterval time.Duration
	CommitCount    int

	// StormRetryMin and StormRetryMax bound the backoff of in-place retries while a
	// function's failure-storm guard is on: the n-th retry of a record waits
	// min(StormRetryMin·2^(n−1), StormRetryMax), jittered (defaults 1s and 30s).
	StormRetryMin time.Duration
	StormRetryMax time.Duration

	Scheduler Scheduler        // where workloads go; required
	Store     checkpoint.Store // durable checkpoints; required
	// Reader says what each record becomes and where failures go; required
	// (delaystreams.SourceReader for a source topic, delaystreams.RungReader for a rung).
	Reader Reader
	// Producer makes the records of ActionProduce steps durable; required
	// (delaystreams.Router).
	Producer Producer
	// Guard is the failure-storm guard shared by the node's tailers; nil for none.
	Guard Guard
	// Status records the task states of the tailer's workloads; nil records none, and
	// costs nothing (see StatusSink).
	Status StatusSink
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Group == "" && c.Name != "" {
		c.Group = "kasync." + c.Name
	}
	if c.Start == "" {
		c.Start = StartEarliest
	}
	if c.OffsetsLost == "" {
		c.OffsetsLost = OffsetsLostEarliest
	}
	if c.Ordering == "" {
		c.Ordering = OrderUnordered
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = 500
	}
	if c.MaxWait == 0 {
		c.MaxWait = 10 * time.Millisecond
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 10000
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if c.PartitionMaxInFlight == 0 {
		c.PartitionMaxInFlight = c.MaxInFlight
	}
	if c.RevokeTimeout == 0 {
		c.RevokeTimeout = 10 * time.Second
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.CommitCount == 0 {
		c.CommitCount = 10000
	}
	if c.StormRetryMin == 0 {
		c.StormRetryMin = time.Second
	}
	if c.StormRetryMax == 0 {
		c.StormRetryMax = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("tailer %q: %s: %s", c.Name, field, fmt.Sprintf(format, args...)))
	}
	if c.Name == "" {
		bad("Name", "is empty; name the tailer")
	}
	if c.Topic == "" {
		bad("Topic", "is empty; name the topic to read")
	}
	if c.Start != StartEarliest && c.Start != StartLatest {
		bad("Start", "%q is not %q or %q", c.Start, StartEarliest, StartLatest)
	}
	if c.OffsetsLost != OffsetsLostEarliest && c.OffsetsLost != OffsetsLostFail {
		bad("OffsetsLost", "%q is not %q or %q", c.OffsetsLost, OffsetsLostEarliest, OffsetsLostFail)
	}
	switch c.Ordering {
	case OrderUnordered, OrderKey, OrderPartition:
	default:
		bad("Ordering", "%q is not %q, %q or %q", c.Ordering, OrderUnordered, OrderKey, OrderPartition)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"MaxRecords", c.MaxRecords}, {"MaxInFlight", c.MaxInFlight}, {"PartitionMaxInFlight", c.PartitionMaxInFlight},
		{"CommitCount", c.CommitCount}} {
		if f.v < 1 {
			bad(f.name, "%d must be at least 1", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"MaxWait", c.MaxWait}, {"RevokeTimeout", c.RevokeTimeout}, {"CommitInterval", c.CommitInterval},
		{"StormRetryMin", c.StormRetryMin}, {"StormRetryMax", c.StormRetryMax}} {
		if f.v <= 0 {
			bad(f.name, "%s must be positive", f.v)
		}
	}
	if c.FetchMaxBytes < MinFetchMaxBytes {
		bad("FetchMaxBytes", "%d is below %d bytes", c.FetchMaxBytes, MinFetchMaxBytes)
	}
	if c.StormRetryMax < c.StormRetryMin {
		bad("StormRetryMax", "%s is below StormRetryMin (%s)", c.StormRetryMax, c.StormRetryMin)
	}
	if c.Scheduler == nil {
		bad("Scheduler", "is nil")
	}
	if c.Store == nil {
		bad("Store", "is nil")
	}
	if c.Reader == nil {
		bad("Reader", "is nil; give a delaystreams.SourceReader or RungReader")
	}
	if c.Producer == nil {
		bad("Producer", "is nil; give the delaystreams.Router")
	}
	return errors.Join(errs...)
}

// stormRetry is the wait before the n-th in-place retry (n ≥ 1) of a record while its
// function's storm guard is on, jittered by ±20% (r in [0, 1)) so that the retries of a
// window of records do not come back as one burst.
func (c Config) stormRetry(n int, r float64) time.Duration {
	d := c.StormRetryMin
	for i := 1; i < n && d < c.StormRetryMax; i++ {
		d *= 2
	}
	d = min(d, c.StormRetryMax)
	return time.Duration(float64(d) * (0.8 + 0.4*r))
}
