package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/bench/benchproto"
	"github.com/kasync/kasync/internal/config"
)

// AllModes are the modes in the order they run.
var AllModes = []string{ModeRaw, ModeInline, ModeInProcess, ModeSplit, ModeAsynq}

var descriptions = map[string]string{
	ModeRaw:       "franz-go consumer group, counting records (the reading limit)",
	ModeInline:    "hand-written franz-go consumer: function inline, commit after each poll",
	ModeInProcess: "kasync node: tailer → scheduler → in-process function → Pebble checkpoint",
	ModeSplit:     "kasync split: tailer node → gRPC scheduler node → gRPC SDK worker (3 processes)",
	ModeAsynq:     "Asynq server on a local Redis, no-op handler",
}

// Options configure a run. Zero values take the defaults of `kasync bench`.
type Options struct {
	// Exe is the kasync binary the harness starts children from (its own, normally).
	Exe string
	// Brokers is a running cluster to use; empty starts the embedded broker in a
	// process of its own.
	Brokers []string

	Records int // backlog per Kafka mode (default 1,000,000)
	// Runs repeats every mode this many times, interleaved (mode by mode, run after
	// run); the report gives medians and the spread (default 1).
	Runs        int
	Size        int // payload bytes (default 100, at least 16)
	Partitions  int // of the benchmark topics (default 12)
	Keys        int // distinct record keys (default 1000)
	Concurrency int // kasync function concurrency, worker capacity, Asynq concurrency (default 64)
	// ChildGOMAXPROCS, when positive, is the GOMAXPROCS of every measured process
	// (kasync's, the hand-written and raw consumers', Asynq's server), as a container
	// with that many CPUs would give it; 0 leaves the Go default (every core). The
	// broker and Redis keep theirs.
	ChildGOMAXPROCS int
	Modes           []string

	LatencyFraction float64       // latency phase rate = this × the mode's peak (default 0.5; 0 < f ≤ 1)
	LatencyMaxRate  float64       // and at most this per second (0: no cap)
	LatencyDuration time.Duration // of each latency phase (default 5s)
	// Lateness runs the delay-rung measurement: a millisecond ladder under load.
	Lateness bool

	AsynqRecords int    // Asynq's backlog (default 100,000)
	RedisServer  string // redis-server binary (default: from PATH)
	AsynqPeer    string // kasync-bench-asynq binary (default: next to Exe, then PATH)

	// ProfileDir, when set, receives a CPU and an allocation profile of every measured
	// kasync child: <mode>-<phase>.cpu.pprof and .alloc.pprof.
	ProfileDir string

	// Stall is how long a child may go without progress before it is killed (default 60s).
	Stall time.Duration
	// Progress receives a progress bar (TTY) or progress lines; nil for none.
	Progress io.Writer
	TTY      bool
	Logger   *slog.Logger
}

// Limits of the options.
const (
	MaxRecords = 100_000_000
	MaxSize    = 1 << 20
)

// WithDefaults fills the zero values.
func (o Options) WithDefaults() Options {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.Records, 1_000_000)
	def(&o.Runs, 1)
	def(&o.Size, 100)
	def(&o.Partitions, 12)
	def(&o.Keys, 1000)
	def(&o.Concurrency, 64)
	def(&o.AsynqRecords, 100_000)
	if len(o.Modes) == 0 {
		o.Modes = slices.Clone(AllModes)
	}
	if o.LatencyFraction == 0 {
		o.LatencyFraction = 0.5
	}
	if o.LatencyDuration == 0 {
		o.LatencyDuration = 5 * time.Second
	}
	if o.Stall == 0 {
		o.Stall = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate names the first bad option and how to fix it; flag names are those of
// `kasync bench`.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Exe == "" {
		bad("no kasync binary to start children from")
	}
	if o.Records < 1 || o.Records > MaxRecords {
		bad("--records %d: use 1 to %d", o.Records, MaxRecords)
	}
	if o.Runs < 1 || o.Runs > 100 {
		bad("--runs %d: use 1 to 100", o.Runs)
	}
	if o.AsynqRecords < 1 || o.AsynqRecords > MaxRecords {
		bad("--asynq-records %d: use 1 to %d", o.AsynqRecords, MaxRecords)
	}
	if o.Size < minPayload || o.Size > MaxSize {
		bad("--size %d: use %d to %d bytes (the first %d carry the produce time and sequence number)", o.Size, minPayload, MaxSize, minPayload)
	}
	if o.Partitions < 1 || o.Partitions > 1000 {
		bad("--partitions %d: use 1 to 1000", o.Partitions)
	}
	if o.Keys < 1 {
		bad("--keys %d: use at least 1", o.Keys)
	}
	if o.ChildGOMAXPROCS < 0 || o.ChildGOMAXPROCS > 1024 {
		bad("--child-gomaxprocs %d: use 1 to 1024, or 0 for the Go default", o.ChildGOMAXPROCS)
	}
	if o.Concurrency < 1 || o.Concurrency > 10000 {
		bad("--concurrency %d: use 1 to 10000", o.Concurrency)
	}
	if !(o.LatencyFraction > 0 && o.LatencyFraction <= 1) {
		bad("--latency-fraction %g: use a fraction of the peak rate above 0 and at most 1, like 0.5", o.LatencyFraction)
	}
	if o.LatencyMaxRate < 0 {
		bad("--latency-max-rate %g: use 0 (no cap) or a positive rate", o.LatencyMaxRate)
	}
	if o.LatencyDuration < 100*time.Millisecond || o.LatencyDuration > time.Hour {
		bad("--latency-duration %s: use 100ms to 1h", o.LatencyDuration)
	}
	if o.Stall < time.Second {
		bad("--stall %s: use at least 1s", o.Stall)
	}
	seen := map[string]bool{}
	for _, m := range o.Modes {
		if !slices.Contains(AllModes, m) {
			bad("--modes: unknown mode %q; choose from %s", m, strings.Join(AllModes, ", "))
		}
		if seen[m] {
			bad("--modes: %q named twice", m)
		}
		seen[m] = true
	}
	return errors.Join(errs...)
}

// harness is one run in progress.
type harness struct {
	o         Options
	log       *slog.Logger
	dir       string // scratch: node data, configs
	runID     string
	brokers   []string
	broker    *proc // nil with --brokers
	redis     *proc
	redisAddr string
	prod      *kgo.Client
	adm       *kadm.Client
	bar       *progressBar
	report    *Report
	round     int // the run under way, 0-based: part of group, topic and directory names
	// producerPeak is the rate the harness produced the backlog at: latency phases
	// offer at most LatencyFraction of it, or the producer would be the queue measured.
	producerPeak float64

	mu    sync.Mutex
	procs []*proc // helpers to stop at the end
}

// Run runs the modes one after another and returns the report. A mode that fails or
// cannot run is a row with Error or Skipped; Run fails only when nothing can be measured
// (no broker, no backlog) or ctx ends.
func Run(ctx context.Context, o Options) (*Report, error) {
	o = o.WithDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kasync-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: scratch directory: %w", err)
	}
	began := time.Now()
	h := &harness{o: o, log: o.Logger, dir: dir, runID: strconv.FormatInt(time.Now().UnixNano()%1e9, 36),
		bar: newProgressBar(o.Progress, o.TTY)}
	defer h.close()
	h.report = &Report{Started: time.Now().UTC().Truncate(time.Second), Machine: machine(), Ratios: map[string]float64{},
		Settings: Settings{Runs: o.Runs, Records: o.Records, AsynqRecords: o.AsynqRecords, Size: o.Size, Partitions: o.Partitions,
			Keys: o.Keys, Concurrency: o.Concurrency, ChildGOMAXPROCS: o.ChildGOMAXPROCS, LatencyFraction: o.LatencyFraction, LatencyMaxRate: o.LatencyMaxRate,
			LatencyDuration: Duration(o.LatencyDuration)}}
	if err := h.startBroker(); err != nil {
		return nil, err
	}
	backlog := "kasync-bench-" + h.runID + "-backlog"
	if kafkaModes := slices.DeleteFunc(slices.Clone(o.Modes), func(m string) bool { return m == ModeAsynq }); len(kafkaModes) > 0 || o.Lateness {
		if err := h.createTopic(ctx, backlog); err != nil {
			return nil, err
		}
		h.bar.phase("producing the backlog", int64(o.Records))
		if h.producerPeak, err = h.produce(ctx, backlog, int64(o.Records), 0, o.Size, nil); err != nil {
			return nil, err
		}
		h.report.ProducerRate = h.producerPeak
		h.bar.finish(fmt.Sprintf("%d records of %d bytes in %d partitions", o.Records, o.Size, o.Partitions))
	}
	runs := make([][]Row, o.Runs)
	for r := range o.Runs {
		h.round = r
		for _, m := range o.Modes {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			row := Row{Mode: m, Description: descriptions[m]}
			h.runMode(ctx, &row, backlog)
			runs[r] = append(runs[r], row)
		}
		h.report.Rows = runs[r] // the lateness run reads the in-process peak of the latest run
	}
	h.report.Rows = aggregate(runs)
	if o.Lateness {
		h.report.Lateness = h.runLateness(ctx)
	}
	h.report.Ratios, h.report.RatioRanges = medianRatios(runs)
	h.report.Took = Duration(time.Since(began).Round(time.Millisecond))
	return h.report, ctx.Err()
}

// roundSuffix tells the runs' groups and topics apart: "" for the first, "-r2" on.
func (h *harness) roundSuffix() string {
	if h.round == 0 {
		return ""
	}
	return "-r" + strconv.Itoa(h.round+1)
}

func ratios(rows []Row) map[string]float64 {
	rate := map[string]float64{}
	for _, r := range rows {
		if r.Error == "" && r.Skipped == "" && r.Rate > 0 {
			rate[r.Mode] = r.Rate
		}
	}
	out := map[string]float64{}
	for _, k := range []string{ModeInProcess, ModeSplit} {
		for _, base := range []string{ModeRaw, ModeInline, ModeAsynq} {
			if rate[k] > 0 && rate[base] > 0 {
				out[k+"/"+base] = rate[k] / rate[base]
			}
		}
	}
	return out
}

func (h *harness) close() {
	h.mu.Lock()
	procs := slices.Clone(h.procs)
	h.mu.Unlock()
	slices.Reverse(procs)
	for _, p := range procs {
		p.stop(10 * time.Second)
	}
	if h.prod != nil {
		if h.broker == nil {
			h.deleteTopics()
		}
		h.prod.Close()
	}
	if err := os.RemoveAll(h.dir); err != nil {
		h.log.Warn("removing the scratch directory", "dir", h.dir, "err", err)
	}
	h.bar.close()
}

// deleteTopics deletes the topics of this run (the harness's and its nodes' rung and
// dead-letter topics) from a cluster named with --brokers; the embedded broker goes away
// with them.
func (h *harness) deleteTopics() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listed, err := h.adm.ListTopics(ctx)
	if err != nil {
		h.log.Warn("bench: could not list topics to delete this run's", "err", err)
		return
	}
	prefix := "kasync-bench-" + h.runID + "-"
	var ours []string
	for _, name := range listed.Names() {
		if strings.HasPrefix(name, prefix) {
			ours = append(ours, name)
		}
	}
	if len(ours) == 0 {
		return
	}
	res, err := h.adm.DeleteTopics(ctx, ours...)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		h.log.Warn("bench: could not delete this run's topics; delete them by hand", "prefix", prefix, "err", err)
	}
}

func (h *harness) track(p *proc) *proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.procs = append(h.procs, p)
	return p
}

// startBroker starts the embedded broker in a process of its own, unless --brokers.
func (h *harness) startBroker() error {
	if len(h.o.Brokers) > 0 {
		h.brokers = h.o.Brokers
		h.report.Machine.Broker = strings.Join(h.brokers, ",")
	} else {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		p, err := startProc("broker", h.o.Exe, []string{"broker", "--listen", addr, "--data-dir", "",
			"--partitions", strconv.Itoa(h.o.Partitions), "--log-level", "warn"}, false, nil)
		if err != nil {
			return err
		}
		h.broker = h.track(p)
		if err := waitDial(addr, p, 30*time.Second); err != nil {
			return fmt.Errorf("bench: the embedded broker: %w", err)
		}
		h.brokers = []string{addr}
		h.report.Machine.Broker = "embedded (kfake) in its own process"
	}
	var err error
	h.prod, err = kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return fmt.Errorf("bench: kafka client: %w", err)
	}
	h.adm = kadm.NewClient(h.prod)
	return nil
}

func (h *harness) createTopic(ctx context.Context, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := h.adm.CreateTopic(ctx, int32(h.o.Partitions), -1, nil, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("bench: create topic %s with %d partitions on %s: %w", topic, h.o.Partitions, strings.Join(h.brokers, ","), err)
	}
	return nil
}

// ackLatency is a histogram of produce → acknowledgement latencies, fed from the
// producer's callbacks.
type ackLatency struct {
	mu sync.Mutex
	h  benchproto.Histogram
}

// produce produces n records to topic, paced at rate per second (0: as fast as the
// client goes), and returns the rate achieved. Each is stamped when handed to the
// client; with acks set, the time from the stamp to the broker's acknowledgement of
// each record is recorded in it.
func (h *harness) produce(ctx context.Context, topic string, n int64, rate float64, size int, acks *ackLatency) (float64, error) {
	var (
		failed  atomic.Pointer[error]
		pending sync.WaitGroup
		acked   atomic.Int64
	)
	done := func(r *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		} else if acks != nil {
			if at, ok := benchproto.Stamped(r.Value); ok {
				d := time.Since(at)
				acks.mu.Lock()
				acks.h.Record(d)
				acks.mu.Unlock()
			}
		}
		acked.Add(1)
		pending.Done()
	}
	one := func(seq int64) {
		key := seq % int64(h.o.Keys)
		pending.Add(1)
		h.prod.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(key % int64(h.o.Partitions)),
			Key: strconv.AppendInt(nil, key, 10), Value: newPayload(size, uint64(seq), time.Now(), false)}, done)
	}
	start := time.Now()
	var sent int64
	if rate <= 0 {
		for ; sent < n && ctx.Err() == nil; sent++ {
			one(sent)
			if sent%4096 == 0 {
				h.bar.set(acked.Load())
				if e := failed.Load(); e != nil {
					break
				}
			}
		}
	} else {
		tick := time.NewTicker(time.Millisecond)
		for sent < n && ctx.Err() == nil && failed.Load() == nil {
			due := min(n, int64(rate*time.Since(start).Seconds())+1)
			for ; sent < due; sent++ {
				one(sent)
			}
			h.bar.set(sent)
			<-tick.C
		}
		tick.Stop()
	}
	took := time.Since(start)
	pending.Wait()
	h.bar.set(acked.Load())
	if e := failed.Load(); e != nil {
		return 0, fmt.Errorf("bench: produce to %s: %w", topic, *e)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return float64(sent) / took.Seconds(), nil
}

// warmUp produces a warm-up record to every partition of topic every 50ms until ready
// is closed or ctx ends.
func (h *harness) warmUp(ctx context.Context, topic string, ready <-chan struct{}) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		for p := range h.o.Partitions {
			h.prod.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(p), Value: newPayload(minPayload, 0, time.Time{}, true)}, nil)
		}
		select {
		case <-ready:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// brokerCPU is the broker's (or Redis's) CPU time so far; false when not ours.
func brokerCPU(p *proc) (time.Duration, bool) {
	if p == nil {
		return 0, false
	}
	return procCPU(p.pid())
}

// childArgs are the arguments of a measured kasync child.
func (h *harness) childArgs(mode, topic, group string, n int64, warm bool, extra ...string) []string {
	parts := 0
	if warm {
		parts = h.o.Partitions
	}
	args := append([]string{"bench-child", mode, "--brokers", strings.Join(h.brokers, ","), "--topic", topic,
		"--group", group, "--n", strconv.FormatInt(n, 10), "--partitions", strconv.Itoa(parts),
		"--concurrency", strconv.Itoa(h.o.Concurrency)}, extra...)
	return append(args, h.profileArgs(strings.TrimPrefix(group, "kasync-bench-"+h.runID+"-"))...)
}

// profileArgs are the profiling flags of a process named name, with --profile-dir.
func (h *harness) profileArgs(name string) []string {
	if h.o.ProfileDir == "" {
		return nil
	}
	base := filepath.Join(h.o.ProfileDir, name)
	return []string{"--cpuprofile", base + ".cpu.pprof", "--memprofile", base + ".alloc.pprof"}
}

// measured is the processes of one phase of a mode: the measured one and the helpers
// it needs, which are stopped after it.
type measured struct {
	main    *proc
	helpers []*proc
}

func (m *measured) stop() {
	for i := len(m.helpers) - 1; i >= 0; i-- {
		m.helpers[i].stop(15 * time.Second)
	}
}

// cpu and peakRSS sum over the processes of the phase; call after stop.
func (m *measured) cpu() time.Duration {
	d := m.main.cpu()
	for _, p := range m.helpers {
		d += p.cpu()
	}
	return d
}

func (m *measured) peakRSS() int64 {
	r := m.main.peakRSS()
	for _, p := range m.helpers {
		r += p.peakRSS()
	}
	return r
}

// startMode starts the processes of mode reading topic with a fresh group until n
// distinct records ran. warm: the child is ready once warm-up records from every
// partition ran.
func (h *harness) startMode(mode, topic string, n int64, warm bool, phase string) (*measured, error) {
	phase += h.roundSuffix()
	group := "kasync-bench-" + h.runID + "-" + mode + "-" + phase
	switch mode {
	case ModeRaw, ModeInline:
		child := childRaw
		if mode == ModeInline {
			child = childInline
		}
		p, err := startProc(mode, h.o.Exe, h.childArgs(child, topic, group, n, warm), true, h.childEnv())
		if err != nil {
			return nil, err
		}
		return &measured{main: h.track(p)}, nil
	case ModeInProcess:
		path, _, err := h.writeNodeConfig(mode+"-"+phase, topic, group, nil)
		if err != nil {
			return nil, err
		}
		p, err := startProc(mode, h.o.Exe, h.childArgs(childNode, topic, group, n, warm, "--config", path), true, h.childEnv())
		if err != nil {
			return nil, err
		}
		return &measured{main: h.track(p)}, nil
	case ModeSplit:
		return h.startSplit(topic, group, n, warm, phase)
	}
	return nil, fmt.Errorf("bench: mode %q has no processes", mode)
}

// childEnv is the environment added to a measured process's: its GOMAXPROCS, when
// Options.ChildGOMAXPROCS sets one.
func (h *harness) childEnv() []string {
	if h.o.ChildGOMAXPROCS <= 0 {
		return nil
	}
	return []string{"GOMAXPROCS=" + strconv.Itoa(h.o.ChildGOMAXPROCS)}
}

// startSplit starts a scheduler node, a tailer node pushing to it, and the measured SDK
// worker.
func (h *harness) startSplit(topic, group string, n int64, warm bool, phase string) (_ *measured, err error) {
	path, grpcAddr, err := h.writeNodeConfig(ModeSplit+"-"+phase, topic, group, nil)
	if err != nil {
		return nil, err
	}
	m := &measured{}
	defer func() {
		if err != nil {
			m.stop()
		}
	}()
	sched, err := startProc("kasync-split scheduler node", h.o.Exe, append([]string{"run", "--config", path, "--roles", "scheduler",
		"--log-level", "warn"}, h.profileArgs(ModeSplit+"-"+phase+"-scheduler")...), false, h.childEnv())
	if err != nil {
		return nil, err
	}
	m.helpers = append(m.helpers, h.track(sched))
	if err := waitDial(grpcAddr, sched, 30*time.Second); err != nil {
		return nil, err
	}
	tl, err := startProc("kasync-split tailer node", h.o.Exe, append([]string{"run", "--config", path, "--roles", "tailer,delay",
		"--scheduler", grpcAddr, "--log-level", "warn"}, h.profileArgs(ModeSplit+"-"+phase+"-tailer")...), false, h.childEnv())
	if err != nil {
		return nil, err
	}
	m.helpers = append(m.helpers, h.track(tl))
	w, err := startProc("kasync-split worker", h.o.Exe, h.childArgs(childWorker, topic, group, n, warm, "--scheduler", grpcAddr), true, h.childEnv())
	if err != nil {
		return nil, err
	}
	m.main = h.track(w)
	return m, nil
}

// writeNodeConfig writes the config of a node reading topic as group into the scratch
// directory and returns its path and gRPC address. edit adjusts it (the lateness run's
// ladder).
func (h *harness) writeNodeConfig(name, topic, group string, edit func(*config.Config)) (string, string, error) {
	grpcAddr, err := freeAddr()
	if err != nil {
		return "", "", err
	}
	prefix := "kasync-bench-" + h.runID + "-" + name
	cfg := &config.Config{
		Kafka:      config.Kafka{Brokers: h.brokers, ClientID: "kasync-bench"},
		Node:       config.Node{DataDir: filepath.Join(h.dir, name), GRPCListen: grpcAddr, HTTPListen: "127.0.0.1:0"},
		Delay:      config.Delay{TopicPrefix: prefix + ".delay"},
		DeadLetter: config.DeadLetter{Topic: prefix + ".dead-letter"},
		Functions:  []config.Function{{Name: benchFunction, Concurrency: h.o.Concurrency}},
		Tailers:    []config.Tailer{{Name: name, Topic: topic, Function: benchFunction, Group: group, Start: "earliest"}},
	}
	if edit != nil {
		edit(cfg)
	}
	cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return "", "", fmt.Errorf("bench: node config: %w", err)
	}
	path := filepath.Join(h.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg.YAML()), 0o600); err != nil {
		return "", "", fmt.Errorf("bench: write node config: %w", err)
	}
	return path, grpcAddr, nil
}

// runMode measures one mode: throughput on the backlog, then latency at a fixed rate.
func (h *harness) runMode(ctx context.Context, row *Row, backlog string) {
	if row.Mode == ModeAsynq {
		h.runAsynq(ctx, row)
		return
	}
	n := int64(h.o.Records)
	row.Records = n
	h.bar.phase(row.Mode+" throughput", n)
	cpu0, _ := brokerCPU(h.broker)
	m, err := h.startMode(row.Mode, backlog, n, false, "throughput")
	if err != nil {
		row.Error = err.Error()
		h.bar.finish("failed")
		return
	}
	if !h.measureThroughput(ctx, row, m, h.broker, cpu0) {
		return
	}
	rate := h.latencyRate(row.Rate)
	lat, err := h.latencyPhase(ctx, row.Mode, rate)
	if err != nil {
		row.Error = "latency phase: " + err.Error()
		return
	}
	row.Latency = lat
}

// measureThroughput waits for the result of m's throughput phase, stops its processes
// and fills row's throughput figures; broker is the broker's (or Redis's) process, cpu0
// its CPU time when the phase began. It reports false, with row.Error set, on failure.
func (h *harness) measureThroughput(ctx context.Context, row *Row, m *measured, broker *proc, cpu0 time.Duration) bool {
	res, err := m.main.awaitResult(ctx, h.o.Stall, nil, h.bar.set)
	m.stop()
	if err != nil {
		row.Error = err.Error()
		h.bar.finish("failed")
		return false
	}
	if cpu1, ok := brokerCPU(broker); ok {
		row.BrokerCPUPerMillion = perMillion(cpu1-cpu0, res.Count)
	}
	row.Rate = res.Rate()
	row.CPUPerMillion = perMillion(m.cpu(), res.Count)
	row.PeakRSS = m.peakRSS()
	h.bar.finish(fmt.Sprintf("%s tasks/s", formatCount(row.Rate)))
	return true
}

// latencyFigures are the figures of a latency phase offered rate that got res.
func (h *harness) latencyFigures(res *benchproto.Result, rate, achieved float64) *LatencyFigures {
	f := &LatencyFigures{Offered: rate, Achieved: achieved, Count: res.Latency.Count(),
		P50: Duration(res.Latency.Quantile(0.5)), P99: Duration(res.Latency.Quantile(0.99)),
		P999: Duration(res.Latency.Quantile(0.999)), Max: Duration(res.Latency.Max())}
	h.bar.finish(fmt.Sprintf("p50 %s p99 %s p999 %s", formatLatency(time.Duration(f.P50)),
		formatLatency(time.Duration(f.P99)), formatLatency(time.Duration(f.P999))))
	return f
}

func perMillion(d time.Duration, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return d.Seconds() * 1e6 / float64(n)
}

// latencyRate is the offered rate of a mode's latency phase: LatencyFraction of the
// mode's peak, or of the producer's when that is lower, capped at LatencyMaxRate.
func (h *harness) latencyRate(peak float64) float64 {
	if h.producerPeak > 0 {
		peak = min(peak, h.producerPeak)
	}
	r := h.o.LatencyFraction * peak
	if h.o.LatencyMaxRate > 0 {
		r = min(r, h.o.LatencyMaxRate)
	}
	return max(r, 1)
}

// latencyPhase starts a mode on a fresh empty topic, waits until it runs warm-up
// records from every partition, then produces at rate for LatencyDuration.
func (h *harness) latencyPhase(ctx context.Context, mode string, rate float64) (*LatencyFigures, error) {
	n := max(int64(math.Round(rate*h.o.LatencyDuration.Seconds())), 10)
	topic := "kasync-bench-" + h.runID + "-latency-" + mode + h.roundSuffix()
	if err := h.createTopic(ctx, topic); err != nil {
		return nil, err
	}
	h.bar.phase(fmt.Sprintf("%s latency @ %s", mode, formatRate(rate)), n)
	m, err := h.startMode(mode, topic, n, true, "latency")
	if err != nil {
		h.bar.finish("failed")
		return nil, err
	}
	defer m.stop()
	var acks ackLatency
	res, achieved, err := h.offer(ctx, m.main, func(ctx context.Context) (float64, error) {
		return h.produce(ctx, topic, n, rate, h.o.Size, &acks)
	}, func(ctx context.Context, ready <-chan struct{}) { h.warmUp(ctx, topic, ready) })
	if err != nil {
		return nil, err
	}
	f := h.latencyFigures(res, rate, achieved)
	acks.mu.Lock()
	f.AckP99 = Duration(acks.h.Quantile(0.99))
	acks.mu.Unlock()
	return f, nil
}

// offer waits for p to be ready (warming it up meanwhile), runs produce, and returns
// p's result and the rate produce achieved.
func (h *harness) offer(ctx context.Context, p *proc, produce func(context.Context) (float64, error),
	warm func(context.Context, <-chan struct{})) (*benchproto.Result, float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan struct{})
	var readyOnce sync.Once
	type produced struct {
		rate float64
		err  error
	}
	prod := make(chan produced, 1)
	var bg sync.WaitGroup
	defer bg.Wait()
	bg.Add(1)
	go func() {
		defer bg.Done()
		if warm != nil {
			warm(ctx, ready)
		}
		select {
		case <-ready:
		case <-ctx.Done():
			prod <- produced{err: ctx.Err()}
			return
		}
		r, err := produce(ctx)
		prod <- produced{rate: r, err: err}
	}()
	res, err := p.awaitResult(ctx, h.o.Stall, func() { readyOnce.Do(func() { close(ready) }) }, func(int64) {})
	if err != nil {
		cancel()
		h.bar.finish("failed")
		return nil, 0, err
	}
	// The child ran every record, so the producer is done or about to be (an Asynq
	// enqueuer may still be exiting): let it finish rather than cancel it, which would
	// fail a run that succeeded.
	var pr produced
	select {
	case pr = <-prod:
	case <-time.After(h.o.Stall):
		cancel()
		pr = <-prod
	}
	if pr.err != nil {
		h.bar.finish("failed")
		return nil, 0, fmt.Errorf("producing: %w", pr.err)
	}
	return res, pr.rate, nil
}

// runLateness measures the delay rungs: records produced at a steady rate all fail
// their first attempt with a 100ms backoff on a 10ms/50ms/200ms ladder; the lateness
// of their second attempts is measured against the due times the rung records carry.
func (h *harness) runLateness(ctx context.Context) *Lateness {
	ladder := []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}
	backoff := 100 * time.Millisecond
	l := &Lateness{Backoff: Duration(backoff)}
	for _, r := range ladder {
		l.Ladder = append(l.Ladder, Duration(r))
	}
	// Under load: a quarter of the in-process peak (each record is read twice and
	// produced once more), at most 20k/s.
	rate := 5000.0
	for _, r := range h.report.Rows {
		if r.Mode == ModeInProcess && r.Rate > 0 {
			rate = min(h.latencyRate(r.Rate)/2, 20_000)
		}
	}
	l.Offered = rate
	n := max(int64(rate*h.o.LatencyDuration.Seconds()), 10)
	topic := "kasync-bench-" + h.runID + "-lateness"
	if err := h.createTopic(ctx, topic); err != nil {
		l.Error = err.Error()
		return l
	}
	group := "kasync-bench-" + h.runID + "-lateness"
	path, _, err := h.writeNodeConfig("lateness", topic, group, func(c *config.Config) {
		c.Delay.Rungs = []config.Duration{config.Duration(ladder[0]), config.Duration(ladder[1]), config.Duration(ladder[2])}
		c.Delay.Partitions = int32(h.o.Partitions)
		c.Functions[0].Retry = config.Retry{MaxAttempts: 3, Backoff: []config.Duration{config.Duration(backoff)}}
		c.StormGuard.Disabled = true // every first attempt fails on purpose: measure the ladder, not the guard
	})
	if err != nil {
		l.Error = err.Error()
		return l
	}
	h.bar.phase(fmt.Sprintf("delay lateness @ %s", formatRate(rate)), n)
	p, err := startProc("lateness", h.o.Exe, h.childArgs(childLateness, topic, group, n, true, "--config", path), true, h.childEnv())
	if err != nil {
		l.Error = err.Error()
		return l
	}
	h.track(p)
	res, _, err := h.offer(ctx, p, func(ctx context.Context) (float64, error) {
		return h.produce(ctx, topic, n, rate, h.o.Size, nil)
	}, func(ctx context.Context, ready <-chan struct{}) { h.warmUp(ctx, topic, ready) })
	p.stop(15 * time.Second)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	l.Retries, l.Early = res.Lateness.Count(), res.Early
	l.P50, l.P99, l.Max = Duration(res.Lateness.Quantile(0.5)), Duration(res.Lateness.Quantile(0.99)), Duration(res.Lateness.Max())
	h.bar.finish(fmt.Sprintf("lateness p50 %s p99 %s max %s, %d early", formatLatency(time.Duration(l.P50)), formatLatency(time.Duration(l.P99)), formatLatency(time.Duration(l.Max)), l.Early))
	return l
}
