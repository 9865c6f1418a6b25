package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/bench/benchproto"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/node"
	kruntime "github.com/kasync/kasync/runtime"
)

// Child modes: what `kasync bench-child MODE` runs. Each reads until it has seen --n
// distinct records, writes its result event and exits.
const (
	childRaw      = "raw"      // a franz-go consumer group that only counts
	childInline   = "inline"   // a hand-written consumer: the function inline, commit after each poll
	childNode     = "node"     // a kasync node with the function in process
	childWorker   = "worker"   // an SDK worker serving the function to a scheduler over gRPC
	childLateness = "lateness" // a kasync node on a millisecond ladder; every first attempt fails
)

// benchFunction is the name of the function every kasync mode runs.
const benchFunction = "bench-noop"

// childFlags are the flags of every child mode; each mode uses those it needs.
type childFlags struct {
	brokers     string
	topic       string
	group       string
	n           int64
	partitions  int
	concurrency int
	scheduler   string
	config      string
	progress    time.Duration
	cpuProfile  string
	memProfile  string
}

// RunChild is `kasync bench-child MODE [flags]`: one measured process of the harness.
// It writes benchproto events on stdout and logs on stderr.
func RunChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("bench-child: name a mode: raw, inline, node, worker or lateness")
	}
	mode := args[0]
	fs := flag.NewFlagSet("kasync bench-child "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f childFlags
	fs.StringVar(&f.brokers, "brokers", "", "seed brokers, comma-separated")
	fs.StringVar(&f.topic, "topic", "", "topic to read")
	fs.StringVar(&f.group, "group", "", "consumer group")
	fs.Int64Var(&f.n, "n", 0, "distinct records to see before the result")
	fs.IntVar(&f.partitions, "partitions", 0, "ready once warm-up records from this many partitions ran (0: ready at once)")
	fs.IntVar(&f.concurrency, "concurrency", 64, "worker capacity")
	fs.StringVar(&f.scheduler, "scheduler", "", "worker: the scheduler's gRPC address")
	fs.StringVar(&f.config, "config", "", "node, lateness: the node's config file")
	fs.DurationVar(&f.progress, "progress-every", 100*time.Millisecond, "how often to report progress")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile of the run to this file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	stopProfiles, err := StartProfiles(f.cpuProfile, f.memProfile, stderr)
	if err != nil {
		return err
	}
	defer stopProfiles()
	if f.n < 1 {
		return fmt.Errorf("bench-child %s: --n %d: want at least 1", mode, f.n)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w := benchproto.NewWriter(stdout)
	tr := newTracker(f.n, f.partitions)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var reporting sync.WaitGroup
	reporting.Add(1)
	go func() {
		defer reporting.Done()
		report(ctx, w, tr, f.progress)
	}()
	// The moment the group has every partition assigned is when reading can begin: the
	// throughput is counted from it, so a consumer that buffers whole fetches before the
	// first start is not credited with the time it spent fetching.
	var subscribed atomic.Int64
	if mode != childLateness && f.group != "" {
		reporting.Add(1)
		go func() {
			defer reporting.Done()
			if t, err := waitAssigned(ctx, splitList(f.brokers), f.group, f.topic); err == nil {
				subscribed.Store(t.UnixNano())
			} else if ctx.Err() == nil {
				log.Warn("bench: could not see the group's assignment; throughput counts from the first start", "err", err)
			}
		}()
	}
	var res *benchproto.Result
	switch mode {
	case childRaw, childInline:
		err = consume(ctx, f, tr, mode == childInline)
	case childNode:
		err = runNode(ctx, f, tr, log)
	case childWorker:
		err = runWorker(ctx, f, tr, log)
	case childLateness:
		res, err = runLateness(ctx, f, tr, log)
	default:
		err = fmt.Errorf("unknown mode %q: use raw, inline, node, worker or lateness", mode)
	}
	cancel()
	reporting.Wait()
	if err != nil {
		return fmt.Errorf("bench-child %s: %w", mode, err)
	}
	if res == nil {
		res = tr.result()
		res.Subscribed = subscribed.Load()
	}
	return w.Write(benchproto.Event{Event: benchproto.EventResult, Result: res})
}

// report writes ready once, then progress every period, until ctx ends.
func report(ctx context.Context, w *benchproto.Writer, tr *tracker, every time.Duration) {
	select {
	case <-tr.ready:
		_ = w.Write(benchproto.Event{Event: benchproto.EventReady})
	case <-ctx.Done():
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = w.Write(benchproto.Event{Event: benchproto.EventProgress, Done: tr.count.Load()})
		case <-ctx.Done():
			_ = w.Write(benchproto.Event{Event: benchproto.EventProgress, Done: tr.count.Load()})
			return
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// consume is the two plain franz-go consumers. raw only counts what each poll returns
// (the reading limit); inline is what users write by hand: for each record the function,
// inline, then a synchronous commit of what the poll returned.
func consume(ctx context.Context, f childFlags, tr *tracker, inline bool) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(splitList(f.brokers)...), kgo.ConsumerGroup(f.group),
		kgo.ConsumeTopics(f.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	for {
		select {
		case <-tr.done:
			return nil
		default:
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		if inline {
			fs.EachRecord(func(r *kgo.Record) { tr.start(r.Value, r.Partition, time.Now()) })
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			continue
		}
		fs.EachRecord(func(r *kgo.Record) { tr.start(r.Value, r.Partition, time.Now()) })
	}
}

// noop is the function of the kasync modes: it only notes that it started.
func noop(tr *tracker) kruntime.Func {
	return func(_ context.Context, t *kruntime.Task) error {
		tr.start(t.Payload, partitionOfID(t.ID), time.Now())
		return nil
	}
}

// runNode runs a whole kasync node (tailer, scheduler, delay readers) with the function
// in process, until tr is done, then drains it.
func runNode(ctx context.Context, f childFlags, tr *tracker, log *slog.Logger) error {
	reg := kruntime.NewRegistry()
	reg.MustRegister(benchFunction, noop(tr))
	return runNodeWith(ctx, f.config, reg, tr, log)
}

func runNodeWith(ctx context.Context, path string, reg *kruntime.Registry, tr *tracker, log *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	nctx, stop := context.WithCancel(ctx)
	defer stop()
	n, err := node.Start(nctx, node.Options{Config: cfg, Registry: reg, Logger: log})
	if err != nil {
		return err
	}
	stopped := make(chan error, 1)
	go func() { stopped <- n.Wait() }()
	select {
	case <-tr.done:
	case <-ctx.Done():
	case err := <-stopped:
		return fmt.Errorf("node stopped early: %w", err)
	}
	stop()
	return <-stopped
}

// runWorker serves the function to the scheduler at f.scheduler until tr is done.
func runWorker(ctx context.Context, f childFlags, tr *tracker, log *slog.Logger) error {
	reg := kruntime.NewRegistry()
	reg.MustRegister(benchFunction, noop(tr))
	w, err := kruntime.NewWorker(kruntime.WorkerConfig{Addrs: splitList(f.scheduler), Registry: reg,
		Capacity: f.concurrency, Logger: log})
	if err != nil {
		return err
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(wctx) }()
	select {
	case <-tr.done:
	case <-ctx.Done():
	case err := <-stopped:
		return fmt.Errorf("worker stopped early: %w", err)
	}
	stop()
	if err := <-stopped; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// runLateness: every record's first attempt fails, so it waits on the ladder; the
// second attempt succeeds. The result's Lateness is due time → second start, from the
// due times the rung records carry.
func runLateness(ctx context.Context, f childFlags, tr *tracker, log *slog.Logger) (*benchproto.Result, error) {
	cfg, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	starts := map[string]time.Time{} // task id → second attempt's start
	reg := kruntime.NewRegistry()
	reg.MustRegister(benchFunction, func(_ context.Context, t *kruntime.Task) error {
		now := time.Now()
		if stamp, ok := benchproto.Stamped(t.Payload); !ok || stamp.UnixNano() == 0 {
			tr.start(t.Payload, partitionOfID(t.ID), now) // a warm-up: ready
			return nil
		}
		if t.Attempt == 1 {
			return errors.New("bench: every first attempt fails")
		}
		if t.Attempt == 2 && tr.start(t.Payload, partitionOfID(t.ID), now) {
			mu.Lock()
			starts[t.ID] = now
			mu.Unlock()
		}
		return nil
	})
	if err := runNodeWith(ctx, f.config, reg, tr, log); err != nil {
		return nil, err
	}
	dues, err := readDues(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res := tr.result()
	res.Lateness = &benchproto.Histogram{}
	for id, start := range starts {
		due, ok := dues[id]
		if !ok {
			return nil, fmt.Errorf("task %s ran a second attempt but no rung record names it", id)
		}
		if start.Before(due) {
			res.Early++
		}
		res.Lateness.Record(start.Sub(due))
	}
	return res, nil
}

// readDues reads every rung topic of cfg to its end: origin id → due time.
func readDues(ctx context.Context, cfg *config.Config) (map[string]time.Time, error) {
	topics := make([]string, len(cfg.Delay.Rungs))
	for i, r := range cfg.Delay.Rungs {
		topics[i] = cfg.Delay.RungTopic(r)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, fmt.Errorf("reading the rungs: %w", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("rung end offsets: %w", err)
	}
	left := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if left[o.Topic] == nil {
				left[o.Topic] = map[int32]int64{}
			}
			left[o.Topic][o.Partition] = o.Offset
		}
	})
	dues := map[string]time.Time{}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading the rungs: %w (%d topics not read to their end)", err, len(left))
		}
		fs.EachRecord(func(r *kgo.Record) {
			var origin, due string
			for _, h := range r.Headers {
				switch h.Key {
				case delaystreams.HeaderOrigin:
					origin = string(h.Value)
				case delaystreams.HeaderDue:
					due = string(h.Value)
				}
			}
			if ms, err := strconv.ParseInt(due, 10, 64); err == nil && origin != "" {
				dues[origin] = time.UnixMilli(ms)
			}
			if end, ok := left[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
				delete(left[r.Topic], r.Partition)
				if len(left[r.Topic]) == 0 {
					delete(left, r.Topic)
				}
			}
		})
	}
	return dues, nil
}

// StartProfiles starts a CPU profile into cpu and, at stop, writes an allocation
// profile into mem; "" skips either. Errors at stop are written to stderr.
func StartProfiles(cpu, mem string, stderr io.Writer) (stop func(), err error) {
	var cpuFile *os.File
	if cpu != "" {
		if cpuFile, err = os.Create(cpu); err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpuFile); err != nil {
			_ = cpuFile.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	if mem != "" {
		runtime.MemProfileRate = 64 << 10 // finely enough to see per-record allocations
	}
	return func() {
		if cpuFile != nil {
			pprof.StopCPUProfile()
			_ = cpuFile.Close()
		}
		if mem != "" {
			writeAllocProfile(mem, stderr)
		}
	}, nil
}

func writeAllocProfile(path string, stderr io.Writer) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "--memprofile: %v\n", err)
	}
}

// waitAssigned polls the group until every partition of topic is assigned to a member
// of a stable group, and returns when it saw that.
func waitAssigned(ctx context.Context, brokers []string, group, topic string) (time.Time, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return time.Time{}, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var partitions int
	for {
		if partitions == 0 {
			if td, err := adm.ListTopics(ctx, topic); err == nil {
				if d, ok := td[topic]; ok && d.Err == nil {
					partitions = len(d.Partitions)
				}
			}
		}
		if partitions > 0 {
			if gs, err := adm.DescribeGroups(ctx, group); err == nil {
				if g, ok := gs[group]; ok && g.Err == nil && g.State == "Stable" && len(g.AssignedPartitions()[topic]) == partitions {
					return time.Now(), nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
