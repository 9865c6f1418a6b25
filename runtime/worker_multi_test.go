package runtime

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/rpc"
)

// TestSlotLedgerModel drives the slot ledger through random joins, leaves, task
// arrivals (never beyond credit, as an honest scheduler) and task ends, and checks
// after each step that no slot is made or lost, no session holds more unused credit
// than its share, no free slot is left while a live session has room for it, and the
// credit each scheduler was told of equals what the ledger says it holds.
func TestSlotLedgerModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := 1 + rng.IntN(4)
		capacity := n + rng.IntN(12)
		w := &Worker{cfg: WorkerConfig{Capacity: capacity}, free: capacity}
		type peer struct {
			s      *session
			told   int // credit offered in the hello plus credit queued, minus tasks sent
			tasks  int // tasks sent and not answered
			joined bool
		}
		peers := make([]*peer, n)
		var dead []*session // left sessions whose tasks still hold slots
		for i := range peers {
			peers[i] = &peer{}
		}
		fresh := func(i int) *session {
			return &session{w: w, share: slotShare(capacity, n, i), qnotify: make(chan struct{}, 1)}
		}
		drainCredit := func(p *peer) {
			p.s.qmu.Lock()
			p.told += int(p.s.credit)
			p.s.credit = 0
			p.s.qmu.Unlock()
		}
		for step := range 400 {
			i := rng.IntN(n)
			p := peers[i]
			w.mu.Lock()
			switch op := rng.IntN(5); {
			case !p.joined:
				p.s, p.joined, p.tasks = fresh(i), true, 0
				p.told = w.joinLocked(p.s)
			case op == 0: // the stream ends; its tasks stay until answered
				w.leaveLocked(p.s)
				if p.s.held > 0 {
					dead = append(dead, p.s)
				}
				p.joined = false
			case op == 1 && len(dead) > 0: // a task of an ended stream is answered
				d := dead[0]
				w.releaseLocked(d)
				if d.held == 0 {
					dead = dead[1:]
				}
			case op <= 2 && p.tasks > 0: // a task ends
				if back := w.releaseLocked(p.s); back > 0 {
					p.s.queueCredit(uint32(back))
				}
				p.tasks--
			default: // the scheduler sends tasks within the credit it was told of
				drainCredit(p)
				k := rng.IntN(p.told + 1)
				require.Equal(t, k, w.takeLocked(p.s, k), "seed %d step %d", seed, step)
				p.told -= k
				p.tasks += k
			}
			total := w.free
			room := false
			for _, s := range w.sessions {
				total += s.granted + s.held
				require.LessOrEqual(t, s.granted, s.share, "seed %d step %d: unused credit over the share", seed, step)
				room = room || s.granted < s.share
			}
			for _, d := range dead {
				total += d.held
			}
			require.Equal(t, capacity, total, "seed %d step %d: slots made or lost", seed, step)
			require.GreaterOrEqual(t, w.free, 0)
			require.False(t, room && w.free > 0, "seed %d step %d: a free slot left while a session has room", seed, step)
			w.mu.Unlock()
			for _, q := range peers {
				if q.joined {
					drainCredit(q)
					require.Equal(t, q.s.granted, q.told, "seed %d step %d: the scheduler's credit and the ledger's differ", seed, step)
					require.Equal(t, q.s.held, q.tasks)
				}
			}
		}
	}
}

// TestSlotLedgerReturnsShareToARejoiningSession: a busy session alone fills the whole
// capacity; when another joins, the slots that free go to the newcomer until it has its
// share, even though the first session's scheduler would use them at once.
func TestSlotLedgerReturnsShareToARejoiningSession(t *testing.T) {
	t.Parallel()
	const capacity = 6
	w := &Worker{cfg: WorkerConfig{Capacity: capacity}, free: capacity}
	a := &session{w: w, share: 3, qnotify: make(chan struct{}, 1)}
	b := &session{w: w, share: 3, qnotify: make(chan struct{}, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Equal(t, 3, w.joinLocked(a), "an address alone is offered its share at first")
	require.Equal(t, 3, w.takeLocked(a, 3))
	require.Equal(t, 3, a.granted, "then the rest, as its scheduler uses the credit")
	require.Equal(t, 3, w.takeLocked(a, 3))
	require.Equal(t, capacity, a.held)
	require.Equal(t, 0, w.joinLocked(b), "no slot is free when b joins")
	for range 3 {
		require.Equal(t, 0, w.releaseLocked(a), "a's freed slots go to b, below its share")
	}
	require.Equal(t, 3, b.granted)
	require.Equal(t, 1, w.releaseLocked(a), "then back to a")
}

// restartable is a scheduler behind a gRPC server that a test can stop and start again
// on the same address, keeping its queues: a node restarting, as its workers see it.
type restartable struct {
	t    *testing.T
	c    *cluster // its pool, scheduler and push stream
	addr string
	srv  *rpc.Server

	mu     sync.Mutex
	g      *grpc.Server
	served chan struct{}
}

func newRestartable(t *testing.T, functions ...string) *restartable {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	pool, err := rpc.NewPool(rpc.PoolOptions{Logger: logger})
	require.NoError(t, err)
	fns := make([]scheduler.Function, len(functions))
	for i, name := range functions {
		fns[i] = scheduler.Function{Name: name, Concurrency: 64, Timeout: time.Minute, Executor: pool}
	}
	sched, err := scheduler.New(scheduler.Config{Functions: fns, Logger: logger})
	require.NoError(t, err)
	srv, err := rpc.NewServer(sched, pool, rpc.ServerOptions{Logger: logger})
	require.NoError(t, err)
	r := &restartable{t: t, srv: srv,
		c: &cluster{pool: pool, sched: sched, results: make(map[uint64][]scheduler.Outcome), arrived: make(chan struct{}, 1)}}
	r.start()
	// The push stream is in process: it stays up while the gRPC server is down.
	r.c.stream, err = scheduler.NewLocal(sched, 0).Open(context.Background(), "test", r.c.deliver)
	require.NoError(t, err)
	t.Cleanup(func() {
		r.stop()
		require.NoError(t, r.c.stream.Close())
		require.NoError(t, pool.Close())
		require.NoError(t, sched.Close())
	})
	return r
}

// start serves on the address (the first time, on a new one).
func (r *restartable) start() {
	r.t.Helper()
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	require.NoError(r.t, err)
	r.addr = lis.Addr().String()
	g := grpc.NewServer(grpc.WaitForHandlers(true))
	r.srv.Register(g)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	r.mu.Lock()
	r.g, r.served = g, served
	r.mu.Unlock()
}

// stop ends the server and every stream on it.
func (r *restartable) stop() {
	r.mu.Lock()
	g, served := r.g, r.served
	r.g = nil
	r.mu.Unlock()
	if g != nil {
		g.Stop()
		<-served
	}
}

// runEach pushes tokens first..first+n-1 to c and waits for each to succeed.
func runEach(t *testing.T, c *cluster, first, n uint64, function string) {
	t.Helper()
	for tok := first; tok < first+n; tok++ {
		c.push(t, tok, function, "")
	}
	for tok := first; tok < first+n; tok++ {
		require.Equal(t, scheduler.Success(), c.outcome(t, tok), "token %d", tok)
	}
}

func TestWorkerServesEverySchedulerAndRejoinsOne(t *testing.T) {
	t.Parallel()
	a, b := newRestartable(t, "f"), newRestartable(t, "f")
	reg := NewRegistry()
	require.NoError(t, reg.Register("f", func(context.Context, *Task) error { return nil }))
	stop, _, _ := runWorker(t, newTestWorker(t, a.addr, reg, func(cfg *WorkerConfig) { cfg.Addrs = []string{a.addr, b.addr} }))

	// Each node's tailers push to their own scheduler: both need the worker.
	runEach(t, a.c, 1, 20, "f")
	runEach(t, b.c, 1, 20, "f")

	// Node a goes away: b goes on, and a's tasks wait in its queue.
	a.stop()
	runEach(t, b.c, 100, 20, "f")
	for tok := uint64(100); tok < 110; tok++ {
		a.c.push(t, tok, "f", "")
	}
	// a comes back on its address: the worker finds it again and runs what waited.
	a.start()
	for tok := uint64(100); tok < 110; tok++ {
		require.Equal(t, scheduler.Success(), a.c.outcome(t, tok), "token %d", tok)
	}
	runEach(t, b.c, 200, 20, "f")
	require.NoError(t, stop())
}

func TestWorkerSharesCapacityBetweenSchedulers(t *testing.T) {
	t.Parallel()
	const capacity, perScheduler = 5, 60
	a, b := newCluster(t, time.Minute, "f"), newCluster(t, time.Minute, "f")
	var running, peak atomic.Int64
	reg := NewRegistry()
	require.NoError(t, reg.Register("f", func(ctx context.Context, _ *Task) error {
		now := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		// Hold the slot a little, so that tasks of both schedulers overlap.
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	}))
	stop, _, _ := runWorker(t, newTestWorker(t, a.addr, reg, func(cfg *WorkerConfig) {
		cfg.Addrs, cfg.Capacity = []string{a.addr, b.addr}, capacity
	}))
	var wg sync.WaitGroup
	for _, c := range []*cluster{a, b} {
		for tok := uint64(1); tok <= perScheduler; tok++ {
			c.push(t, tok, "f", "")
		}
	}
	for _, c := range []*cluster{a, b} {
		wg.Go(func() {
			for tok := uint64(1); tok <= perScheduler; tok++ {
				require.Equal(t, scheduler.Success(), c.outcome(t, tok), "token %d", tok)
			}
		})
	}
	wg.Wait()
	require.LessOrEqual(t, peak.Load(), int64(capacity), "tasks running at once over all schedulers")
	require.NoError(t, stop())
}

func TestWorkerRejectedByOneSchedulerStopsAll(t *testing.T) {
	t.Parallel()
	good, other := newCluster(t, time.Minute, "f"), newCluster(t, time.Minute, "g")
	reg := NewRegistry()
	require.NoError(t, reg.Register("f", func(context.Context, *Task) error { return nil }))
	_, done, result := runWorker(t, newTestWorker(t, good.addr, reg, func(cfg *WorkerConfig) {
		cfg.Addrs = []string{good.addr, other.addr}
	}))
	select {
	case <-done:
		err := result()
		require.ErrorIs(t, err, ErrWorkerRejected)
		require.ErrorContains(t, err, other.addr)
	case <-time.After(waitTimeout):
		t.Fatal("Run kept going although a scheduler refused the worker")
	}
}

func TestNewWorkerValidatesSeveralAddresses(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	require.NoError(t, reg.Register("f", func(context.Context, *Task) error { return nil }))
	_, err := NewWorker(WorkerConfig{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"}, Registry: reg})
	require.ErrorContains(t, err, `Addrs[2] "127.0.0.1:1" repeats Addrs[0]`)
	_, err = NewWorker(WorkerConfig{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}, Registry: reg, Capacity: 2})
	require.ErrorContains(t, err, "Capacity is 2 for 3 scheduler addresses")
}
