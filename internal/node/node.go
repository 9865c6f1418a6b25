package node

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/dashboard"
	"github.com/kasync/kasync/internal/kafka"
	kruntime "github.com/kasync/kasync/runtime"
	"github.com/kasync/kasync/runtime/httpfn"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/rpc"
	"github.com/kasync/kasync/tailer"
)

// Roles says which parts a node runs. The zero value runs all of them.
type Roles struct {
	Tailer    bool // the tailers of the config's source topics
	Scheduler bool // the scheduler and its gRPC API
	Delay     bool // the delay readers, one per rung topic
}

func (r Roles) all() bool { return !r.Tailer && !r.Scheduler && !r.Delay }

// Options configure a node.
type Options struct {
	Config *config.Config // validated, with defaults
	// Registry holds functions the node runs in-process (demo functions, embedding).
	// A configured function not in it, and without a url, is served by SDK workers.
	Registry *kruntime.Registry
	Roles    Roles
	// SchedulerAddr is the scheduler tailers push to when this node does not run the
	// scheduler role.
	SchedulerAddr string
	Logger        *slog.Logger
	// SecurityReloadInterval is how often node.grpc_tls's files and the tokens file are
	// looked at for a rotation (default rpc.DefaultReloadInterval, 5s; see ReloadSecurity).
	SecurityReloadInterval time.Duration
}

// Node is a running kasync node.
type Node struct {
	opts Options
	cfg  *config.Config
	log  *slog.Logger

	store    *checkpoint.PebbleStore
	sched    *scheduler.Scheduler
	pool     *rpc.WorkerPool
	https    []*httpfn.Executor // HTTP functions' executors, closed with the scheduler
	grpcSrv  *grpc.Server
	grpcLis  net.Listener
	httpSrv  *http.Server
	httpLis  net.Listener
	producer *kgo.Client
	conn     *grpc.ClientConn
	reg      *prometheus.Registry
	router   *delaystreams.Router
	guard    *delaystreams.Guard
	tailers  []*tailer.Tailer // source tailers, then delay readers
	sources  []*tailer.Tailer // the source tailers, in config order (tailer role)
	ingest   []*tailer.Tailer // the ingest tailers of functions with submit: true (tasks.go)
	adm      *kadm.Client     // on producer; nil without Kafka
	// clientCfg is how the node reaches Kafka, for the short-lived direct consumers of
	// Status (the heads of the rungs); zero without Kafka.
	clientCfg kafka.ClientConfig
	// rungGroups are the ladder's rungs, shortest first, whenever the node has Kafka;
	// rungReaders, with the delay role, their readers by the same index.
	rungGroups  []rungGroup
	rungReaders []*tailer.Tailer
	deadLetters *deadLetterTail // nil without Kafka
	tasks       *taskParts      // submitted tasks and task status (tasks.go); nil when unused
	secReload   *securityReload // the gRPC listener's TLS and tokens files (grpcsec.go); nil without the scheduler role

	done chan struct{}
	err  error
}

// Start builds every part of the node, binds its listeners and starts it. The node runs
// until ctx is done, then drains (tailers first, so in-flight work finishes and is
// checkpointed) and stops; Wait returns then.
func Start(ctx context.Context, opts Options) (_ *Node, err error) {
	if opts.Config == nil {
		return nil, errors.New("node: no config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = kruntime.NewRegistry()
	}
	runTailers := opts.Roles.all() || opts.Roles.Tailer
	runDelay := opts.Roles.all() || opts.Roles.Delay
	runScheduler := opts.Roles.all() || opts.Roles.Scheduler
	if (runTailers || runDelay) && !runScheduler && opts.SchedulerAddr == "" {
		return nil, errors.New("node: the tailer and delay roles without the scheduler role need a scheduler address (--scheduler ADDR)")
	}
	n := &Node{opts: opts, cfg: opts.Config, log: opts.Logger, done: make(chan struct{}), reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			n.closeAll()
		}
	}()
	if runScheduler {
		if err := n.startScheduler(); err != nil {
			return nil, err
		}
	}
	if err := n.startHTTP(); err != nil {
		return nil, err
	}
	if runTailers || runDelay {
		if err := n.buildTailers(ctx, runTailers, runDelay); err != nil {
			return nil, err
		}
	}
	if err := n.reg.Register(newTaskStateCollector(n.sched, n.sources)); err != nil {
		return nil, fmt.Errorf("node: register kasync_tasks: %w", err)
	}
	n.registerTasks()
	n.registerStatusAPI()
	go n.run(ctx)
	return n, nil
}

func (n *Node) startScheduler() error {
	pool, err := rpc.NewPool(rpc.PoolOptions{HeartbeatTimeout: n.cfg.Scheduler.WorkerHeartbeatTimeout.Std(), Logger: n.log})
	if err != nil {
		return fmt.Errorf("node: scheduler.worker_heartbeat_timeout: %w", err)
	}
	n.pool = pool
	fns := make([]scheduler.Function, 0, len(n.cfg.Functions))
	for i, f := range n.cfg.Functions {
		exec, where, err := n.executor(f)
		if err != nil {
			return fmt.Errorf("node: functions[%d] (%s): %w", i, f.Name, err)
		}
		tenant := f.Tenant
		if tenant == config.DefaultTenant {
			tenant = "" // the scheduler's built-in default tenant, or the tenants entry of that name
		}
		fns = append(fns, scheduler.Function{Name: f.Name, Concurrency: f.Concurrency, Timeout: f.Timeout.Std(), Rate: f.Rate,
			Executor: exec, Tenant: tenant,
			Adaptive: scheduler.AdaptiveConfig{Disabled: f.Adaptive.Disabled, Min: f.Adaptive.Min, LatencyFactor: f.Adaptive.LatencyFactor}})
		n.log.Info("function configured", "function", f.Name, "runs", where, "tenant", f.TenantOf(), "concurrency", f.Concurrency,
			"timeout", f.Timeout.Std(), "rate", f.Rate, "adaptive", !f.Adaptive.Disabled)
	}
	tenants := make([]scheduler.Tenant, 0, len(n.cfg.Tenants))
	for _, t := range n.cfg.Tenants {
		tenants = append(tenants, scheduler.Tenant{Name: t.Name, Weight: t.Weight, Concurrency: t.Concurrency, Rate: t.Rate})
	}
	sched, err := scheduler.New(scheduler.Config{Functions: fns, Tenants: tenants, MaxConcurrency: n.cfg.Scheduler.MaxConcurrency,
		MaxWorkloadBytes: n.cfg.Node.MaxWorkloadBytes, Logger: n.log, Registerer: n.reg})
	if err != nil {
		return fmt.Errorf("node: scheduler: %w", err)
	}
	n.sched = sched
	secure, auth, reload, err := grpcSecurity(n.cfg, n.log)
	if err != nil {
		return err
	}
	n.secReload = reload
	srv, err := rpc.NewServer(sched, n.pool, rpc.ServerOptions{MaxWorkloadBytes: n.cfg.Node.MaxWorkloadBytes, Logger: n.log, Auth: auth})
	if err != nil {
		return fmt.Errorf("node: scheduler server: %w", err)
	}
	lis, err := net.Listen("tcp", n.cfg.Node.GRPCListen)
	if err != nil {
		return fmt.Errorf("node: node.grpc_listen %s: %w (is another kasync running? pick another address)", n.cfg.Node.GRPCListen, err)
	}
	n.grpcLis = lis
	n.grpcSrv = grpc.NewServer(append(append([]grpc.ServerOption{grpc.WaitForHandlers(true)}, rpc.GRPCServerOptions()...), secure...)...)
	logGRPCSecurity(n.cfg, lis, n.log)
	srv.Register(n.grpcSrv)
	return nil
}

// executor chooses what runs f: a function registered in process (kasync dev, tests,
// embedding) wins; otherwise an HTTP endpoint when f has a url, else SDK workers.
func (n *Node) executor(f config.Function) (scheduler.Executor, string, error) {
	if _, ok := n.opts.Registry.Lookup(f.Name); ok {
		return n.opts.Registry, "in-process", nil
	}
	if f.URL == "" {
		return n.pool, "sdk-workers", nil
	}
	var tlsCfg *tls.Config
	if t := f.TLS; t != nil {
		var err error
		if tlsCfg, err = kafka.LoadTLS(t.CAFile, t.CertFile, t.KeyFile); err != nil {
			return nil, "", fmt.Errorf("tls: %w", err)
		}
	}
	exec, err := httpfn.New(httpfn.Config{Function: f.Name, URL: f.URL, TLS: tlsCfg, MaxConns: f.Concurrency, Logger: n.log})
	if err != nil {
		return nil, "", fmt.Errorf("url: %w", err)
	}
	n.https = append(n.https, exec)
	return exec, "http", nil
}

func (n *Node) startHTTP() error {
	lis, err := net.Listen("tcp", n.cfg.Node.HTTPListen)
	if err != nil {
		return fmt.Errorf("node: node.http_listen %s: %w (pick another address)", n.cfg.Node.HTTPListen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", n.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{prometheus.DefaultGatherer, n.reg}, promhttp.HandlerOpts{}))
	dash, err := dashboard.New(dashboard.Options{Source: n, Logger: n.log})
	if err != nil {
		_ = lis.Close()
		return fmt.Errorf("node: %w", err)
	}
	mux.Handle("/", dash) // the page, /status.json and /assets/; 404 for other paths
	n.httpLis = lis
	n.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// buildTailers builds what reads Kafka: the checkpoint store, the producer, the delay
// ladder's topics and router, the storm guard, and then the source tailers (tailer
// role) and one delay reader per rung topic (delay role).
func (n *Node) buildTailers(ctx context.Context, sources, rungs bool) error {
	dir := filepath.Join(n.cfg.Node.DataDir, "checkpoints")
	// One store for all tailers, syncing at most once per checkpoint interval.
	store, err := checkpoint.OpenPebble(checkpoint.PebbleOptions{Dir: dir, Logger: n.log,
		MinSyncInterval: n.cfg.Checkpoint.Interval.Std()})
	if err != nil {
		return fmt.Errorf("node: open checkpoints in node.data_dir (%s): %w", dir, err)
	}
	n.store = store
	if err := n.reg.Register(newCheckpointCollector(store, checkpointStoreLabel)); err != nil {
		return fmt.Errorf("node: register kasync_checkpoint_commits_total: %w", err)
	}

	clientCfg, err := kafkaClientConfig(n.cfg, n.log)
	if err != nil {
		return err
	}
	base, err := clientCfg.Opts()
	if err != nil {
		return fmt.Errorf("node: kafka: %w", err)
	}
	n.clientCfg = clientCfg
	n.producer, err = kgo.NewClient(append(append(slices.Clone(base), kafka.ProducerOpts()...), kafka.Metrics(n.reg, "producer"))...)
	if err != nil {
		return fmt.Errorf("node: kafka producer: %w", err)
	}
	adm := kadm.NewClient(n.producer)
	n.adm = adm
	if err := n.ensureTopics(ctx, adm); err != nil {
		return err
	}
	if err := n.setupTasks(ctx, adm); err != nil {
		return err
	}
	if sources {
		n.warnMissingSourceTopics(ctx, adm)
	}
	if err := n.buildRouter(); err != nil {
		return err
	}
	for i, topic := range n.router.RungTopics() {
		// The group is named after the rung topic: every node's reader of a rung
		// shares its partitions.
		n.rungGroups = append(n.rungGroups, rungGroup{name: delaystreams.RungName(n.cfg.Delay.Rungs[i].Std()), topic: topic, group: topic})
	}
	n.deadLetters = newDeadLetterTail(clientCfg, n.cfg.DeadLetter.Topic)

	sched, err := n.tailerScheduler()
	if err != nil {
		return err
	}
	groupOpts := append(append([]kgo.Opt(nil), base...), kgo.SessionTimeout(n.cfg.Kafka.SessionTimeout.Std()))
	// common fills in what every tailer shares; client names its Kafka client's metrics.
	common := func(tc tailer.Config, client string) tailer.Config {
		tc.ClientOpts = append(slices.Clip(groupOpts), kafka.Metrics(n.reg, client))
		tc.CommitInterval = n.cfg.Checkpoint.Interval.Std()
		tc.CommitCount = n.cfg.Checkpoint.MaxPending
		tc.Scheduler = sched
		tc.Store = store
		tc.Producer = n.router
		if n.guard != nil {
			tc.Guard = n.guard
			tc.StormRetryMin = n.cfg.StormGuard.RetryMin.Std()
			tc.StormRetryMax = n.cfg.StormGuard.RetryMax.Std()
		}
		tc.Logger = n.log
		return tc
	}
	if sources {
		for i, tc := range n.cfg.Tailers {
			newReader := delaystreams.NewSourceReader
			if tc.Ordering != config.OrderingUnordered {
				// Key and partition order retry in place: a record on a rung would let
				// the later records of its key overtake it.
				newReader = delaystreams.NewOrderedSourceReader
			}
			reader, err := newReader(n.router, tc.Function, tc.Priority)
			if err != nil {
				return fmt.Errorf("node: tailers[%d]: %w", i, err)
			}
			cfg := tailer.Config{
				Name:          tc.Name,
				Topic:         tc.Topic,
				Function:      tc.Function,
				Group:         tc.Group,
				Start:         tailer.Start(tc.Start),
				OffsetsLost:   tailer.OffsetsLost(tc.OffsetsLost),
				Ordering:      tailer.Ordering(tc.Ordering),
				MaxRecords:    tc.Batch.MaxRecords,
				MaxWait:       tc.Batch.MaxWait.Std(),
				MaxInFlight:   tc.MaxInFlight,
				RevokeTimeout: tc.RevokeTimeout.Std(),
				Reader:        reader,
			}
			if tc.TaskStatus {
				cfg.Status = n.taskSink()
			}
			tl, err := tailer.New(common(cfg, "tailer/"+tc.Name))
			if err != nil {
				return fmt.Errorf("node: tailers[%d]: %w", i, err)
			}
			n.tailers = append(n.tailers, tl)
		}
		n.sources = slices.Clone(n.tailers)
		if err := n.reg.Register(newLagCollector(n.sources)); err != nil {
			return fmt.Errorf("node: register kasync_tailer_lag_records, kasync_tailer_lag_seconds: %w", err)
		}
		ingest, err := n.ingestTailers(common)
		if err != nil {
			return err
		}
		n.ingest = ingest
		n.tailers = append(n.tailers, ingest...)
	}
	if rungs {
		for i, rg := range n.rungGroups {
			reader, err := delaystreams.NewRungReader(n.router, i, n.log)
			if err != nil {
				return fmt.Errorf("node: delay.rungs[%d]: %w", i, err)
			}
			tl, err := tailer.New(common(tailer.Config{
				Name:        rg.topic,
				Topic:       rg.topic,
				Group:       rg.group,
				Start:       tailer.StartEarliest,
				MaxInFlight: n.cfg.Delay.MaxInFlight,
				Reader:      reader,
				Status:      n.taskSink(),
			}, "delay/"+rg.name))
			if err != nil {
				return fmt.Errorf("node: delay.rungs[%d]: %w", i, err)
			}
			n.tailers = append(n.tailers, tl)
			n.rungReaders = append(n.rungReaders, tl)
		}
		if err := n.reg.Register(newDelayCollector(adm, n.rungGroups, n.log)); err != nil {
			return fmt.Errorf("node: register kasync_delay_records: %w", err)
		}
	}
	if err := n.reg.Register(newLostCollector(slices.Clone(n.tailers))); err != nil {
		return fmt.Errorf("node: register kasync_tailer_records_lost_total: %w", err)
	}
	return nil
}

// checkpointStoreLabel is the store label of kasync_checkpoint_commits_total: a node
// has one checkpoint store, in Pebble.
const checkpointStoreLabel = "pebble"

// ensureTopics creates the rung and dead-letter topics when missing and refuses to
// start when an existing one could lose a waiting record.
func (n *Node) ensureTopics(ctx context.Context, adm *kadm.Client) error {
	plan := delaystreams.TopicPlan{
		Prefix:                 n.cfg.Delay.TopicPrefix,
		Rungs:                  n.rungs(),
		DeadLetter:             n.cfg.DeadLetter.Topic,
		Partitions:             n.cfg.Delay.Partitions,
		Replication:            n.cfg.Delay.Replication,
		DeadLetterMinRetention: n.cfg.DeadLetter.MinRetention.Std(),
	}
	if err := delaystreams.EnsureTopics(ctx, adm, plan, n.log); err != nil {
		return fmt.Errorf("node: delay rung and dead-letter topics (delay, dead_letter): %w", err)
	}
	return nil
}

// buildRouter builds the ladder, the retry policies, the router and the storm guard.
func (n *Node) buildRouter() error {
	ladder, err := delaystreams.NewLadder(n.rungs(), n.cfg.Delay.Tolerance.Std())
	if err != nil {
		return fmt.Errorf("node: delay: %w", err)
	}
	policies := make(map[string]delaystreams.RetryPolicy, len(n.cfg.Functions))
	for _, f := range n.cfg.Functions {
		backoff := make([]time.Duration, len(f.Retry.Backoff))
		for j, d := range f.Retry.Backoff {
			backoff[j] = d.Std()
		}
		policies[f.Name] = delaystreams.RetryPolicy{MaxAttempts: f.Retry.MaxAttempts, Backoff: backoff, Jitter: retryJitter}
	}
	n.router, err = delaystreams.NewRouter(n.producer, delaystreams.RouterConfig{
		Ladder: ladder, TopicPrefix: n.cfg.Delay.TopicPrefix, DeadLetter: n.cfg.DeadLetter.Topic, Policies: policies,
		Registerer: n.reg,
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if g := n.cfg.StormGuard; !g.Disabled {
		n.guard, err = delaystreams.NewGuard(delaystreams.GuardConfig{Window: g.Window.Std(), MinOutcomes: g.MinOutcomes,
			Threshold: g.Threshold, Logger: n.log, Registerer: n.reg})
		if err != nil {
			return fmt.Errorf("node: storm_guard: %w", err)
		}
	}
	return nil
}

// rungs are delay.rungs as durations.
func (n *Node) rungs() []time.Duration {
	rungs := make([]time.Duration, len(n.cfg.Delay.Rungs))
	for i, r := range n.cfg.Delay.Rungs {
		rungs[i] = r.Std()
	}
	return rungs
}

// retryJitter spreads each retry's delay over ±10%, so that a burst of failures does
// not come back as a burst.
const retryJitter = 0.2

// tailerScheduler is where the node's tailers push: the scheduler in this process, or
// the one at SchedulerAddr.
func (n *Node) tailerScheduler() (tailer.Scheduler, error) {
	if n.sched != nil {
		window := n.cfg.Delay.MaxInFlight
		for _, t := range n.cfg.Tailers {
			window = max(window, t.MaxInFlight)
		}
		return scheduler.NewLocal(n.sched, window), nil
	}
	dial, err := schedulerDialOptions(n.cfg)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(n.opts.SchedulerAddr, append(dial, rpc.DialOptions()...)...)
	if err != nil {
		return nil, fmt.Errorf("node: scheduler address %q: %w", n.opts.SchedulerAddr, err)
	}
	n.conn = conn
	return rpc.NewClient(conn, rpc.ClientOptions{Logger: n.log}), nil
}

// warnMissingSourceTopics says once, loudly, which source topics do not exist: kasync
// does not create them, and a consumer of a missing topic otherwise waits in silence.
func (n *Node) warnMissingSourceTopics(ctx context.Context, adm *kadm.Client) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topics := make([]string, len(n.cfg.Tailers))
	for i, t := range n.cfg.Tailers {
		topics[i] = t.Topic
	}
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		n.log.Warn("could not check that the tailers' topics exist", "err", err)
		return
	}
	for i, t := range n.cfg.Tailers {
		if d, ok := details[t.Topic]; !ok || d.Err != nil {
			n.log.Error("source topic does not exist; the tailer waits for it. kasync does not create source topics: create it",
				"field", fmt.Sprintf("tailers[%d].topic", i), "topic", t.Topic, "brokers", strings.Join(n.cfg.Kafka.Brokers, ","))
		}
	}
}

func kafkaClientConfig(cfg *config.Config, log *slog.Logger) (kafka.ClientConfig, error) {
	cc := kafka.ClientConfig{Brokers: cfg.Kafka.Brokers, ClientID: cfg.Kafka.ClientID, Logger: log}
	if t := cfg.Kafka.TLS; t != nil {
		tc, err := kafka.LoadTLS(t.CAFile, t.CertFile, t.KeyFile)
		if err != nil {
			return cc, fmt.Errorf("node: kafka.tls: %w", err)
		}
		cc.TLS = tc
	}
	if s := cfg.Kafka.SASL; s != nil {
		cc.SASLMechanism, cc.SASLUser, cc.SASLPassword = s.Mechanism, s.Username, s.Password
	}
	return cc, nil
}

// GRPCAddr is the address the scheduler's gRPC API listens on ("" without the role).
func (n *Node) GRPCAddr() string {
	if n.grpcLis == nil {
		return ""
	}
	return n.grpcLis.Addr().String()
}

// HTTPAddr is the address of /metrics, /healthz, /readyz and the dashboard.
func (n *Node) HTTPAddr() string { return n.httpLis.Addr().String() }

// Tailers are the node's tailers, for status and tests.
func (n *Node) Tailers() []*tailer.Tailer { return n.tailers }

// Wait blocks until the node has stopped and returns why it stopped: nil after a clean
// drain, or the first failure of one of its parts.
func (n *Node) Wait() error {
	<-n.done
	return n.err
}

func (n *Node) run(ctx context.Context) {
	defer close(n.done)
	g, gctx := errgroup.WithContext(ctx)
	if n.grpcSrv != nil {
		g.Go(func() error {
			if err := n.grpcSrv.Serve(n.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("node: grpc server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := n.httpSrv.Serve(n.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("node: http server: %w", err)
		}
		return nil
	})
	if n.tasks != nil {
		g.Go(func() error {
			// The index is a view: without it GetTask answers from what it has, and the
			// node's work goes on.
			if err := n.tasks.follow(gctx); err != nil {
				n.log.Error("task status index stopped following kasync.tasks; GetTask answers may be stale until a restart", "err", err)
			}
			return nil
		})
	}
	if n.secReload != nil {
		g.Go(func() error {
			n.secReload.run(gctx, cmp.Or(n.opts.SecurityReloadInterval, rpc.DefaultReloadInterval))
			return nil
		})
	}
	var tailersDone sync.WaitGroup
	for _, tl := range n.tailers {
		tailersDone.Add(1)
		g.Go(func() error {
			defer tailersDone.Done()
			return tl.Run(gctx)
		})
	}
	n.log.Info("node started", "grpc", n.GRPCAddr(), "http", n.HTTPAddr(), "tailers", len(n.tailers))
	g.Go(func() error {
		<-gctx.Done()
		// Tailers drain first: their in-flight work needs the scheduler and workers.
		tailersDone.Wait()
		n.stopServers()
		return nil
	})
	n.err = g.Wait()
	n.closeAll()
	n.log.Info("node stopped", "err", n.err)
}

func (n *Node) stopServers() {
	// Tailers have drained. Workers' Work streams never end on their own, so stop the
	// gRPC server outright (remote tailers reconnect and re-send), then the dispatch.
	if n.grpcSrv != nil {
		n.grpcSrv.Stop()
	}
	if n.pool != nil {
		_ = n.pool.Close()
	}
	if n.sched != nil {
		_ = n.sched.Close()
	}
	n.closeHTTPFunctions()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.httpSrv.Shutdown(ctx)
}

// closeHTTPFunctions closes the idle connections of HTTP functions, once the scheduler
// that ran them has closed.
func (n *Node) closeHTTPFunctions() {
	for _, e := range n.https {
		e.Close()
	}
	n.https = nil
}

// closeAll releases what Start acquired. It is safe on a partly built node.
func (n *Node) closeAll() {
	if n.grpcSrv != nil {
		n.grpcSrv.Stop()
	}
	if n.pool != nil {
		_ = n.pool.Close()
	}
	if n.sched != nil {
		_ = n.sched.Close()
	}
	n.closeHTTPFunctions()
	if n.grpcLis != nil {
		_ = n.grpcLis.Close() // not yet served: Stop does not close it
	}
	if n.httpSrv != nil {
		_ = n.httpSrv.Close()
	}
	if n.httpLis != nil {
		_ = n.httpLis.Close()
	}
	if n.conn != nil {
		_ = n.conn.Close()
	}
	if n.deadLetters != nil {
		n.deadLetters.close()
	}
	if n.producer != nil {
		n.producer.Close()
	}
	n.closeTasks()
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			n.log.Error("closing checkpoint store", "err", err)
		}
	}
}
