package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/internal/status"
	"github.com/kasync/kasync/scheduler"
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

// taskStateCollector exports kasync_tasks{function,state}: how many of a function's
// tasks are in each ATF state that has a count now, on this node, read at scrape time.
//
//   - NEW: records of the function's source partitions this node owns that are in the
//     log and not read yet (each partition's lag minus what the tailer holds in flight).
//   - ENQUEUED: admitted by this node's scheduler, waiting to start.
//   - PROCESSING: handed to an executor and not finished. kasync does not tell CLAIMED
//     from PROCESSING: an SDK worker starts a task as it receives it.
//
// The other states are not counts of this moment: SUCCESS and FATAL_FAILURE are
// kasync_workloads_total's outcomes, and tasks in RETRIABLE_FAILURE wait on the rungs
// (kasync_delay_records, by rung). A node without the scheduler role reports NEW only;
// one without tailers, ENQUEUED and PROCESSING only.
type taskStateCollector struct {
	sched   *scheduler.Scheduler // nil without the scheduler role
	sources []*tailer.Tailer
	tasks   *prometheus.Desc
}

// Task states kasync_tasks reports (DESIGN.md, "Outcomes and task states").
const (
	stateNew        = "NEW"
	stateEnqueued   = "ENQUEUED"
	stateProcessing = "PROCESSING"
)

func newTaskStateCollector(sched *scheduler.Scheduler, sources []*tailer.Tailer) *taskStateCollector {
	return &taskStateCollector{sched: sched, sources: sources, tasks: prometheus.NewDesc("kasync_tasks",
		"Tasks of a function in each ATF state that has a count now, on this node: NEW (in the log of an owned source partition, not read yet), ENQUEUED (waiting in the scheduler), PROCESSING (handed to an executor, not finished).",
		[]string{"function", "state"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *taskStateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.tasks }

// Collect implements prometheus.Collector.
func (c *taskStateCollector) Collect(ch chan<- prometheus.Metric) {
	unread := map[string]int64{}
	for _, t := range c.sources {
		var behind int64
		for _, l := range t.Lag() {
			behind += l.Records
		}
		unread[t.Function()] += max(0, behind-t.Stats().InFlight)
	}
	for fn, n := range unread {
		ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(n), fn, stateNew)
	}
	if c.sched == nil {
		return
	}
	for _, f := range c.sched.Stats().Functions {
		ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(f.Queued), f.Name, stateEnqueued)
		ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(f.Running), f.Name, stateProcessing)
	}
}

// lostCollector exports, for every tailer of the node, rung readers included,
// kasync_tailer_records_lost_total{tailer}: records removed from the log (retention,
// DeleteRecords) below a partition's resume offset before they ran; and
// kasync_tailer_commits_refused_total{tailer}: group commits the broker refused
// because the member's generation was gone (the fence against a node that lost its
// partitions).
type lostCollector struct {
	tailers       []*tailer.Tailer
	lost, refused *prometheus.Desc
}

func newLostCollector(tailers []*tailer.Tailer) *lostCollector {
	return &lostCollector{tailers: tailers,
		lost: prometheus.NewDesc("kasync_tailer_records_lost_total",
			"Records removed from the log (retention, DeleteRecords) below a partition's resume offset before they ran; the tailer logs each loss as an error.",
			[]string{"tailer"}, nil),
		refused: prometheus.NewDesc("kasync_tailer_commits_refused_total",
			"Group commits the broker refused because this member's generation was gone (its partitions moved); progress stays in Pebble and the next owner resumes from the last accepted commit.",
			[]string{"tailer"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *lostCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.lost; ch <- c.refused }

// Collect implements prometheus.Collector.
func (c *lostCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.tailers {
		st := t.Stats()
		ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(st.LostByRetention), t.Name())
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.CommitsRefused), t.Name())
	}
}

// checkpointCollector exports kasync_checkpoint_commits_total{store} from the store's
// own counter at scrape time.
type checkpointCollector struct {
	store   *checkpoint.PebbleStore
	name    string
	commits *prometheus.Desc
}

func newCheckpointCollector(store *checkpoint.PebbleStore, name string) *checkpointCollector {
	return &checkpointCollector{store: store, name: name, commits: prometheus.NewDesc("kasync_checkpoint_commits_total",
		"Checkpoint commits since the node started: batches of partition states committed to the store and synced (one fsync each), however many states each held.",
		[]string{"store"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *checkpointCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.commits }

// Collect implements prometheus.Collector.
func (c *checkpointCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(c.store.Stats().Flushes), c.name)
}

// delayScrapeTimeout bounds the broker requests of one scrape of kasync_delay_records,
// like /readyz's broker check.
const delayScrapeTimeout = 2 * time.Second

// rungGroup is a rung as kasync_delay_records sees it: its label, its topic and the
// consumer group of its delay readers.
type rungGroup struct{ name, topic, group string }

// delayCollector exports kasync_delay_records{rung} at scrape time, from the broker:
// the records of each rung topic its delay readers' group has not committed past (see
// rungBacklog). It asks the broker because a delay reader pauses a partition while its
// head is not due, and a paused partition's log end is not fetched: the tailer's own lag
// would miss what arrived meanwhile, which is most of what waits on a rung.
type delayCollector struct {
	adm     *kadm.Client
	rungs   []rungGroup
	log     *slog.Logger
	records *prometheus.Desc
}

func newDelayCollector(adm *kadm.Client, rungs []rungGroup, log *slog.Logger) *delayCollector {
	return &delayCollector{adm: adm, rungs: rungs, log: log, records: prometheus.NewDesc("kasync_delay_records",
		"Records waiting in a delay rung: over the rung topic's partitions, the log end offset minus the offset the rung's delay readers committed "+
			"to their consumer group (the log start where none is). Read from the broker at scrape time, so every node reports the whole rung; "+
			"absent when the broker did not answer within 2s.",
		[]string{"rung"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *delayCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.records }

// Collect implements prometheus.Collector. A rung the broker could not fully answer
// for is left out rather than reported short.
func (c *delayCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), delayScrapeTimeout)
	defer cancel()
	depths, err := rungDepths(ctx, c.adm, c.rungs, c.log)
	if err != nil {
		c.log.Debug("kasync_delay_records: "+err.Error(), "err", err)
		return
	}
	for _, r := range c.rungs {
		if d, ok := depths[r.name]; ok {
			ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(d.depth), r.name)
		}
	}
}

// rungDepth is what the broker says of one rung: how many records wait on it, and
// the offsets they wait at, by partition (Status peeks at the heads of those with
// records waiting for the rung's oldest due time; a scrape needs only the depth).
type rungDepth struct {
	depth      int64
	partitions []status.RungPartition
}

// rungDepths asks the broker how many records wait on each rung, by rung name (see
// rungBacklog): kasync_delay_records and Status read it the same way. A rung the
// broker could not fully answer for is absent; err is set when the broker answered for
// none.
func rungDepths(ctx context.Context, adm *kadm.Client, rungs []rungGroup, log *slog.Logger) (map[string]rungDepth, error) {
	topics := make([]string, len(rungs))
	groups := make([]string, len(rungs))
	for i, r := range rungs {
		topics[i], groups[i] = r.topic, r.group
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing the rungs' start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing the rungs' end offsets: %w", err)
	}
	commits := adm.FetchManyOffsets(ctx, groups...)
	depths := make(map[string]rungDepth, len(rungs))
	for _, r := range rungs {
		fetched, ok := commits[r.group]
		if !ok || (fetched.Err != nil && !errors.Is(fetched.Err, kerr.GroupIDNotFound)) {
			log.Debug("rung depth: fetching a rung group's offsets failed", "group", r.group, "err", fetched.Err)
			continue
		}
		if n, parts, ok := rungBacklog(r.topic, starts, ends, fetched.Fetched); ok {
			depths[r.name] = rungDepth{depth: n, partitions: parts}
		}
	}
	return depths, nil
}

// rungBacklog sums, over the partitions of topic in ends, the end offset minus the
// committed offset, or minus the start offset where nothing (or less) was committed:
// what was produced and not yet consumed past. It returns those offsets too, a row per
// partition by number, with Waiting as summed (status.Lag). ok is false when any of
// those offsets is missing or came with an error.
func rungBacklog(topic string, starts, ends kadm.ListedOffsets, committed kadm.OffsetResponses) (n int64, parts []status.RungPartition, ok bool) {
	if len(ends[topic]) == 0 {
		return 0, nil, false
	}
	for p, end := range ends[topic] {
		start, found := starts.Lookup(topic, p)
		if end.Err != nil || !found || start.Err != nil {
			return 0, nil, false
		}
		row := status.RungPartition{Partition: p, Committed: -1, LogStart: start.Offset, LogEnd: end.Offset}
		if c, found := committed.Lookup(topic, p); found {
			if c.Err != nil {
				return 0, nil, false
			}
			row.Committed = max(-1, c.At) // At is -1 without a commit
		}
		row.Waiting = status.Lag(row.Committed, row.LogStart, row.LogEnd)
		n += row.Waiting
		parts = append(parts, row)
	}
	slices.SortFunc(parts, func(a, b status.RungPartition) int { return cmp.Compare(a.Partition, b.Partition) })
	return n, parts, true
}
