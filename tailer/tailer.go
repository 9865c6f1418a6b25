package tailer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/internal/logrepeat"
	"github.com/kasync/kasync/scheduler"
)

// Tailer reads one topic as a member of a consumer group and pushes every record to a
// scheduler as a workload; it checkpoints each partition's watermark once the record's
// outcome is durable. See doc.go for the invariants it keeps.
type Tailer struct {
	cfg Config
	log *slog.Logger

	cl     *kgo.Client
	client atomic.Pointer[kgo.Client] // cl, for GroupMember from other goroutines
	stream scheduler.Stream

	mu      sync.Mutex
	parts   map[int32]*partition // owned partitions (the topic is fixed)
	tokens  tokenTable           // pushed workloads awaiting a result
	scratch []*entry             // the poll loop's entries being registered

	inFlight atomic.Int64  // records read and not done, over owned partitions
	room     chan struct{} // cap 1: in-flight fell below MaxInFlight, or a checkpoint write synced
	idle     signal        // a revoking partition ran out of work in flight
	retries  retryQueue    // records waiting for an in-place retry
	holds    holdQueue     // partitions whose head record waits for its time
	outbox   entryQueue    // records being made durable (rungs, dead letter)
	ready    entryQueue    // records whose key became free (OrderKey, OrderPartition)

	commitMu sync.Mutex // one checkpoint write at a time; revocation takes it to fence
	// releasing counts releases waiting for commitMu: the commit loop starts no write
	// meanwhile. A mutex is not fair, and a write the coordinator keeps refusing holds
	// it for RevokeTimeout each time, so without this a revocation could wait out
	// write after write.
	releasing atomic.Int32
	// sinceCommit counts records completed since the periodic write in progress (or
	// the last one) took its snapshot; writing, those completed before that snapshot
	// and not yet synced by it. Their sum is what a crash now would make run again,
	// beyond the records in flight; pollLoop keeps it near CommitCount (room).
	sinceCommit atomic.Int64
	writing     atomic.Int64
	commitNow   chan struct{}
	// urgent is cfg.Store when it can flush without waiting for its sync slot; nil
	// otherwise.
	urgent checkpoint.UrgentFlusher

	stats statCounters
	// errLog keeps lines that can repeat per poll, record or attempt (fetch errors,
	// dead letters, failing produces) to one per key every 30s, with a count.
	errLog logrepeat.Limiter
	// refusalLogged: a commit refused as stale was logged, and none succeeded since.
	refusalLogged atomic.Bool

	// offsetsLost is set when the OffsetsLostFail policy stops the tailer; stopPoll
	// then ends the poll loop.
	offsetsLost atomic.Pointer[error]
	stopPoll    context.CancelFunc
}

// entry is one record in flight: from its read until its outcome is durable. It is
// allocated once per record, so it keeps only what every record needs; what a failed
// or produced record needs more is in its detour.
type entry struct {
	w      scheduler.Workload
	part   *partition
	offset int64
	rec    *kgo.Record

	// key orders the entry when keyed (OrderKey, OrderPartition): while it is active
	// its key is busy, and the partition's later records of the key wait for it.
	key   string
	keyed bool

	x *detour // nil until the record fails or is to be produced
}

// detour is the state of an entry whose record did not simply run and succeed.
type detour struct {
	firstFailure time.Time
	last         scheduler.Outcome // the last failed attempt's outcome, for logs

	due     time.Time // ActionRetry: when the in-place retry is due
	inPlace int       // in-place retries so far

	out    *kgo.Record // ActionProduce: the record to make durable
	to     Destination
	reason string
}

// detour returns e's detour, making it on first use.
func (e *entry) detour() *detour {
	if e.x == nil {
		e.x = &detour{}
	}
	return e.x
}

// New checks cfg and returns a tailer ready to Run.
func New(cfg Config) (*Tailer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	urgent, _ := cfg.Store.(checkpoint.UrgentFlusher)
	return &Tailer{
		cfg:       cfg,
		urgent:    urgent,
		log:       cfg.Logger.With("tailer", cfg.Name, "topic", cfg.Topic),
		parts:     make(map[int32]*partition),
		room:      make(chan struct{}, 1),
		commitNow: make(chan struct{}, 1),
		retries:   retryQueue{wake: make(chan struct{}, 1)},
		holds:     holdQueue{wake: make(chan struct{}, 1)},
		outbox:    entryQueue{wake: make(chan struct{}, 1)},
		ready:     entryQueue{wake: make(chan struct{}, 1)},
	}, nil
}

// Run reads and dispatches until ctx is done, then drains: it stops reading, waits up
// to RevokeTimeout for records in flight, commits every owned partition's checkpoint,
// leaves the group and closes its stream. It returns nil after a clean stop.
func (t *Tailer) Run(ctx context.Context) error {
	stream, err := t.cfg.Scheduler.Open(ctx, t.cfg.Name, t.deliver)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started: a clean stop, nothing was read
		}
		return fmt.Errorf("tailer %s: open scheduler stream: %w", t.cfg.Name, err)
	}
	t.stream = stream
	defer func() {
		if err := stream.Close(); err != nil {
			t.log.Warn("closing scheduler stream", "err", err)
		}
	}()

	// The poll loop's ctx: ended by ctx, or by the OffsetsLostFail policy, which may
	// act as soon as the client exists.
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	t.stopPoll = stopPoll

	start := kgo.NewOffset().AtStart()
	if t.cfg.Start == StartLatest {
		start = kgo.NewOffset().AtEnd()
	}
	opts := append(append([]kgo.Opt(nil), t.cfg.ClientOpts...),
		kgo.ConsumerGroup(t.cfg.Group),
		kgo.ConsumeTopics(t.cfg.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		// start is for a group with no checkpoint; a resume offset that fell out of the
		// log never skips to the end (adjustOffsets handles the one below the log start
		// it can see; this covers retention racing it).
		kgo.ConsumeStartOffset(start),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(t.cfg.MaxWait),
		kgo.FetchMaxBytes(t.cfg.FetchMaxBytes),
		kgo.OnPartitionsAssigned(t.assigned),
		kgo.AdjustFetchOffsetsFn(t.adjustOffsets),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			t.release(m[t.cfg.Topic], true)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			t.release(m[t.cfg.Topic], false)
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("tailer %s: kafka client: %w", t.cfg.Name, err)
	}
	t.cl = cl
	t.client.Store(cl)

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	// The commit loop stops with the poll loop: a periodic write still waiting on the
	// group gives way at once to the final one of the drain.
	commits, stopCommits := context.WithCancel(bg)
	defer stopCommits()
	var wg sync.WaitGroup
	wg.Go(func() { t.commitLoop(commits) })
	wg.Go(func() { t.retryLoop(bg) })
	wg.Go(func() { t.holdLoop(bg) })
	wg.Go(func() { t.outboxLoop(bg) })
	if t.cfg.Ordering != OrderUnordered {
		wg.Go(func() { t.readyLoop(bg) })
	}

	t.log.Info("tailer started", "group", t.cfg.Group, "function", t.cfg.Function, "ordering", t.cfg.Ordering)
	runErr := t.pollLoop(pollCtx)
	stopPoll()
	stopCommits()
	if err := t.offsetsLost.Load(); err != nil && runErr == nil {
		runErr = *err
	}

	// Drain: hand every partition back as a revocation would, then leave the group
	// (whose revoke callback then finds nothing left to do).
	t.release(t.ownedPartitions(), true)
	cl.Close()
	stopBG()
	wg.Wait()
	t.errLog.Flush()
	st := t.Stats()
	t.log.Info("tailer stopped", "read", st.Read, "succeeded", st.Succeeded, "delayed", st.Delayed,
		"hopped", st.Hopped, "dead_lettered", st.DeadLettered, "retried_in_place", st.RetriedInPlace, "fenced", st.Fenced)
	return runErr
}

// Stats are counters of what a tailer has done since it started.
type Stats struct {
	Read, Skipped, Succeeded int64
	// Delayed counts failed attempts sent to a delay rung; Hopped, rung records moved on
	// to the next rung; DeadLettered, records written to the dead-letter topic.
	Delayed, Hopped, DeadLettered int64
	// RetriedInPlace counts in-place retries (the failure-storm guard was on).
	RetriedInPlace int64
	// Fenced counts results dropped because their partition was no longer ours.
	Fenced int64
	// Pauses counts the times a partition was paused at PartitionMaxInFlight.
	Pauses int64
	// InFlight is the records read and not done now; Held, those of them held until
	// their time (ActionWait); Blocked, those waiting behind an earlier record of their
	// key or partition (OrderKey, OrderPartition).
	InFlight, Held, Blocked int64
	// LostByRetention counts records that were removed from the log (retention,
	// DeleteRecords) below a partition's resume offset before they ran.
	LostByRetention int64
	// CommitsRefused counts group commits the coordinator refused because this member's
	// generation was no longer current (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
	// REBALANCE_IN_PROGRESS, ...): the broker's fence against a member that lost its
	// partitions. The checkpoint is in Pebble all the same.
	CommitsRefused int64
}

type statCounters struct {
	read, skipped, succeeded, delayed, hopped, deadLettered, inPlace, fenced, pauses, held, blocked atomic.Int64
	lostByRetention, commitsRefused                                                                 atomic.Int64
}

// Name is the tailer's name (Config.Name).
func (t *Tailer) Name() string { return t.cfg.Name }

// Group is the tailer's consumer group (Config.Group).
func (t *Tailer) Group() string { return t.cfg.Group }

// Function is the function the tailer's records run (Config.Function); "" for a rung
// reader.
func (t *Tailer) Function() string { return t.cfg.Function }

// GroupMember reports the tailer's membership of its consumer group: its member id and
// generation, or "" and -1 while it is not a member (before Run joined the group,
// while it rejoins after losing its membership, after it left).
func (t *Tailer) GroupMember() (member string, generation int32) {
	cl := t.client.Load()
	if cl == nil {
		return "", -1
	}
	return cl.GroupMetadata()
}

// PartitionLag is how far behind the tailer is on one partition it owns.
type PartitionLag struct {
	Partition int32
	// Records is the log end (the high watermark of the latest fetch that returned
	// records) minus the watermark: records not done yet, read or not. While the
	// partition is paused nothing is fetched, so records appended meanwhile are not
	// counted until it resumes.
	Records int64
	// Age is how long ago the oldest record read and not done (the one at the
	// watermark) was produced, by its timestamp; 0 when every record read is done.
	Age time.Duration
}

// Lag returns the lag of every owned partition whose start offset is known, by
// partition, as of now.
func (t *Tailer) Lag() []PartitionLag {
	now := time.Now()
	t.mu.Lock()
	parts := make([]*partition, 0, len(t.parts))
	for _, p := range t.parts {
		parts = append(parts, p)
	}
	t.mu.Unlock()
	lags := make([]PartitionLag, 0, len(parts))
	for _, p := range parts {
		p.mu.Lock()
		if p.win == nil || p.fenced {
			p.mu.Unlock()
			continue
		}
		// A window of a partition without checkpoint starts at -1 until its first record
		// is read: nothing read yet is no lag known, not one record.
		l := PartitionLag{Partition: p.key.Partition, Records: max(0, p.hw-max(p.win.Watermark(), 0))}
		if ms, ok := p.win.Oldest(); ok && ms > 0 {
			l.Age = max(0, now.Sub(time.UnixMilli(ms)))
		}
		p.mu.Unlock()
		lags = append(lags, l)
	}
	slices.SortFunc(lags, func(a, b PartitionLag) int { return cmp.Compare(a.Partition, b.Partition) })
	return lags
}

// Stats returns the tailer's counters.
func (t *Tailer) Stats() Stats {
	return Stats{
		Read: t.stats.read.Load(), Skipped: t.stats.skipped.Load(), Succeeded: t.stats.succeeded.Load(),
		Delayed: t.stats.delayed.Load(), Hopped: t.stats.hopped.Load(), DeadLettered: t.stats.deadLettered.Load(),
		RetriedInPlace: t.stats.inPlace.Load(), Fenced: t.stats.fenced.Load(), Pauses: t.stats.pauses.Load(),
		InFlight: t.inFlight.Load(), Held: t.stats.held.Load(), Blocked: t.stats.blocked.Load(),
		LostByRetention: t.stats.lostByRetention.Load(), CommitsRefused: t.stats.commitsRefused.Load(),
	}
}

// readRoom is how many more records pollLoop may read now. A record counts against
// MaxInFlight from when it is read until it is done, and its completion against
// CommitCount until a checkpoint that holds it is synced: CommitCount only asks for
// an early write, which the store may hold until its next sync slot, so without this
// a fast function would complete any number of records between two syncs. Hence
// every record read and not yet durably done — what a crash makes run again — is at
// most MaxInFlight + CommitCount, however fast records complete and however slow the
// write is (invariant 2).
func (t *Tailer) readRoom() int {
	inFlight := t.inFlight.Load()
	undurable := t.sinceCommit.Load() + t.writing.Load()
	return int(min(int64(t.cfg.MaxInFlight)-inFlight, int64(t.cfg.MaxInFlight+t.cfg.CommitCount)-inFlight-undurable))
}

func (t *Tailer) pollLoop(ctx context.Context) error {
	batch := make([]scheduler.Pushed, 0, t.cfg.MaxRecords)
	for {
		room := t.readRoom()
		if room <= 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-t.room:
				continue
			}
		}
		fetches := t.cl.PollRecords(ctx, min(room, t.cfg.MaxRecords))
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				t.errLog.Log(t.log, slog.LevelWarn, "fetch "+err.Error(), "fetch error", "partition", p, "err", err)
			}
		})
		batch = batch[:0]
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			batch = t.accept(fp, batch)
		})
		if len(batch) == 0 {
			continue
		}
		if err := t.stream.Push(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tailer %s: push to scheduler: %w", t.cfg.Name, err)
		}
	}
}

// accept takes the records of one partition into its window, asks the Reader what each
// becomes, and appends the workloads to dispatch to batch. Records of a partition that
// is no longer ours are dropped: the next owner reads them from the committed watermark.
func (t *Tailer) accept(fp kgo.FetchTopicPartition, batch []scheduler.Pushed) []scheduler.Pushed {
	if len(fp.Records) == 0 {
		return batch
	}
	t.mu.Lock()
	p := t.parts[fp.Partition]
	t.mu.Unlock()
	if p == nil || p.revoking.Load() {
		return batch
	}
	now := time.Now()
	added := 0
	p.mu.Lock()
	if p.fenced || p.win == nil {
		p.mu.Unlock()
		return batch
	}
	p.hw = fp.HighWatermark
	for _, rec := range fp.Records {
		if p.skip.Contains(rec.Offset) {
			if err := p.win.Skip(rec.Offset); err == nil {
				p.dirty = true
				t.stats.skipped.Add(1)
			}
			continue
		}
		if err := p.win.AddAt(rec.Offset, rec.Timestamp.UnixMilli()); err != nil {
			// Below the watermark: already done (the broker reset the fetch position).
			t.errLog.Log(t.log, slog.LevelWarn, "below watermark", "record below the partition's watermark ignored",
				"partition", rec.Partition, "offset", rec.Offset, "err", err)
			continue
		}
		added++
		if len(p.held) > 0 { // behind a held record: wait with it, in order
			p.held = append(p.held, rec)
			p.parked++
			t.stats.held.Add(1)
			continue
		}
		t.scratch = t.stepLocked(p, rec, t.cfg.Reader.Next(rec, now), t.scratch)
	}
	if p.win.InFlight() >= t.cfg.PartitionMaxInFlight && p.pause&pauseFull == 0 {
		t.stats.pauses.Add(1)
		t.setPauseLocked(p, pauseFull, true)
	}
	p.mu.Unlock()

	t.inFlight.Add(int64(added))
	t.stats.read.Add(int64(added))
	batch = t.register(t.scratch, batch)
	clear(t.scratch)
	t.scratch = t.scratch[:0]
	return batch
}

// stepLocked carries out the Reader's step for rec, a record of p already in its window:
// a workload to run is appended to run (the caller registers and pushes it), a record to
// produce goes to the outbox, a record to wait for is held. p.mu must be held.
func (t *Tailer) stepLocked(p *partition, rec *kgo.Record, step Step, run []*entry) []*entry {
	switch step.Action {
	case ActionRun:
		e := &entry{part: p, offset: rec.Offset, rec: rec, w: step.Workload}
		if !step.FirstFailure.IsZero() {
			e.detour().firstFailure = step.FirstFailure
		}
		if t.admitLocked(p, e) {
			run = append(run, e)
		}
	case ActionProduce:
		t.outbox.add(&entry{part: p, offset: rec.Offset, rec: rec, x: &detour{out: step.Record, to: step.To, reason: step.Reason}})
	default:
		until := step.Until
		if step.Action != ActionWait || until.IsZero() {
			// A Reader's bug; hold the record rather than lose or misroute it.
			t.errLog.Log(t.log, slog.LevelError, "reader step", "reader returned an unusable step for a record; holding it and retrying in 1s",
				"partition", rec.Partition, "offset", rec.Offset, "action", step.Action)
			until = time.Now().Add(time.Second)
		}
		p.held = append(p.held, rec)
		p.parked++
		t.stats.held.Add(1)
		if len(p.held) == 1 {
			t.holds.add(p, until)
			t.setPauseLocked(p, pauseHold, true)
		}
	}
	return run
}

// register gives each entry a token and appends it to batch, ready to push.
func (t *Tailer) register(entries []*entry, batch []scheduler.Pushed) []scheduler.Pushed {
	if len(entries) == 0 {
		return batch
	}
	if t.cfg.Status != nil {
		t.statusEnqueued(entries)
	}
	t.mu.Lock()
	for _, e := range entries {
		batch = append(batch, scheduler.Pushed{Token: t.tokens.put(e), Workload: &e.w})
	}
	t.mu.Unlock()
	return batch
}

// setPauseLocked adds or removes one reason to pause p's fetching, and pauses or resumes
// it when that changes whether any reason is left. p.mu must be held, so that pauses
// and resumes of one partition are applied in the order they were decided.
func (t *Tailer) setPauseLocked(p *partition, why pauseReason, on bool) {
	was := p.pause != 0
	if on {
		p.pause |= why
	} else {
		p.pause &^= why
	}
	switch now := p.pause != 0; {
	case now && !was:
		t.cl.PauseFetchPartitions(map[string][]int32{t.cfg.Topic: {p.key.Partition}})
	case !now && was:
		t.cl.ResumeFetchPartitions(map[string][]int32{t.cfg.Topic: {p.key.Partition}})
	}
}

func (t *Tailer) ownedPartitions() []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := make([]int32, 0, len(t.parts))
	for p := range t.parts {
		ps = append(ps, p)
	}
	return ps
}

// assigned registers newly assigned partitions. Their start offsets are decided in
// adjustOffsets, which franz-go calls next, before any fetch.
func (t *Tailer) assigned(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	ps := m[t.cfg.Topic]
	if len(ps) == 0 {
		return
	}
	t.mu.Lock()
	for _, p := range ps {
		t.parts[p] = &partition{key: checkpoint.Key{Group: t.cfg.Group, Topic: t.cfg.Topic, Partition: p}}
	}
	t.mu.Unlock()
	// A pause left from an earlier ownership must not outlive it.
	cl.ResumeFetchPartitions(map[string][]int32{t.cfg.Topic: ps})
	// The info line is adjustOffsets', once the start offsets are decided.
	t.log.Debug("partitions assigned; deciding their start offsets", "partitions", ps)
}

// adjustOffsets starts each new partition from the greater of its local checkpoint and
// the offset committed to the group, and remembers the offsets done above it.
func (t *Tailer) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	var fresh []int32
	var resumed []string
	starts := make(map[int32]int64, len(offsets[t.cfg.Topic])) // resume offsets, for the log start check
	for p, o := range offsets[t.cfg.Topic] {
		t.mu.Lock()
		part := t.parts[p]
		t.mu.Unlock()
		if part == nil {
			continue
		}
		committed := o.EpochOffset().Offset // negative: nothing committed (a reset sentinel)
		local, ok, err := t.cfg.Store.Load(ctx, part.key)
		if err != nil {
			// Resume from the group's commit: some work may run twice, none is lost.
			t.log.Error("loading checkpoint failed; resuming from the group's committed offset", "partition", p, "err", err)
			ok = false
		}
		start := int64(-1)
		var skip checkpoint.RangeSet
		if ok || committed >= 0 {
			st := checkpoint.Resume(local, ok, committed)
			start, skip = st.Watermark, st.Done
			if start > committed {
				offsets[t.cfg.Topic][p] = kgo.NewOffset().At(start)
			}
		}
		part.mu.Lock()
		part.win = newWindow(start)
		part.skip = skip
		part.mu.Unlock()
		// One log line per assignment, not per partition: a rung reader owns dozens.
		switch {
		case start < 0:
			fresh = append(fresh, p)
		default:
			starts[p] = start
			resumed = append(resumed, fmt.Sprintf("%d@%d(group %d, local %t, skip %d)", p, start, committed, ok, skip.NumRanges()))
		}
	}
	t.checkLogStarts(ctx, starts, offsets[t.cfg.Topic])
	if len(fresh) > 0 || len(resumed) > 0 {
		ps := append(slices.Collect(mapKeys(starts)), fresh...)
		slices.Sort(ps)
		slices.Sort(fresh)
		slices.Sort(resumed)
		t.log.Info("partitions assigned", "function", t.cfg.Function, "partitions", ps, "from_checkpoint", resumed,
			"no_checkpoint", fresh, "start", t.cfg.Start)
	}
	return offsets, nil
}

// release hands partitions back. Graceful (a revocation or a stop): stop dispatching
// them, wait up to RevokeTimeout for their work in flight, then fence them and commit
// their checkpoints (Pebble, then the group). Not graceful (lost): fence at once and keep
// what is done in Pebble only, since the group no longer accepts our commits.
// From the moment a partition is fenced no result changes its checkpoint.
func (t *Tailer) release(ps []int32, graceful bool) {
	began := time.Now()
	t.mu.Lock()
	parts := make([]*partition, 0, len(ps))
	for _, p := range ps {
		if part := t.parts[p]; part != nil {
			parts = append(parts, part)
		}
	}
	t.mu.Unlock()
	if len(parts) == 0 {
		return
	}
	for _, p := range parts {
		p.revoking.Store(true)
	}
	if graceful {
		t.waitIdle(parts, t.cfg.RevokeTimeout)
	}

	t.releasing.Add(1)
	t.commitMu.Lock()
	t.releasing.Add(-1)
	defer t.commitMu.Unlock()
	states := make(map[*partition]checkpoint.State, len(parts))
	abandoned := 0
	for _, p := range parts {
		p.mu.Lock()
		if !p.fenced {
			p.fenced = true
			if st, ok := p.stateLocked(); ok {
				states[p] = st
			}
			if p.win != nil {
				abandoned += p.win.InFlight()
			}
			// Records blocked behind a busy key are dropped with the partition.
			t.stats.blocked.Add(-int64(p.blocked))
			p.blocked = 0
		}
		p.mu.Unlock()
	}
	t.mu.Lock()
	for _, p := range parts {
		if t.parts[p.key.Partition] == p {
			delete(t.parts, p.key.Partition)
		}
	}
	t.mu.Unlock()
	t.inFlight.Add(-int64(abandoned))
	notify(t.room)

	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.RevokeTimeout)
	defer cancel()
	if _, err := t.writeCheckpoints(ctx, states, graceful, false); err != nil {
		if refusedAsStale(err) {
			t.stats.commitsRefused.Add(1)
		}
		t.log.Error("final checkpoint of released partitions failed; their next owner may re-run completed work", "err", err)
	}
	// took shows what a slow hand-off waited on: work in flight (up to RevokeTimeout), a
	// periodic write (up to RevokeTimeout), or the final commit, which franz-go holds
	// while the group is joining or syncing, and a rebalance waits for its slowest member.
	t.log.Info("partitions released", "function", t.cfg.Function, "partitions", ps, "graceful", graceful, "abandoned_in_flight", abandoned,
		"took", time.Since(began).Round(time.Millisecond))
}

// waitIdle waits until none of parts has work in flight other than parked records
// (held, or waiting for an in-place retry; the next owner reads them again), or until
// timeout.
func (t *Tailer) waitIdle(parts []*partition, timeout time.Duration) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		wake := t.idle.C()
		busy := 0
		for _, p := range parts {
			p.mu.Lock()
			if p.win != nil && !p.fenced {
				busy += p.win.InFlight() - p.parked
			}
			p.mu.Unlock()
		}
		if busy <= 0 {
			return
		}
		select {
		case <-wake:
		case <-timer.C:
			t.log.Warn("revoke timeout: releasing partitions with work in flight", "in_flight", busy, "timeout", timeout)
			return
		}
	}
}
