package schedulertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
)

// Window is the credit window, in unanswered workloads per stream, that a Setup
// must give the streams of its Opener.
const Window = 32

// Opener is what the suite tests: anything that opens push streams, as
// tailer.Scheduler does.
type Opener interface {
	Open(ctx context.Context, name string, deliver func([]scheduler.Result)) (scheduler.Stream, error)
}

// Setup builds a scheduler configured with exactly fns and returns an Opener wired
// to it; see the package doc for what it must do.
type Setup func(t *testing.T, fns []scheduler.Function) Opener

// waitTimeout bounds every wait for something that must happen. It is long so a
// slow, loaded machine does not fail a correct implementation.
const waitTimeout = 20 * time.Second

// quiet is how long the suite watches for something that must not happen. A
// correct implementation passes however short it is; a broken one is caught more
// often the longer it is.
const quiet = 50 * time.Millisecond

// Run runs every case of the suite as a parallel subtest of t.
func Run(t *testing.T, setup Setup) {
	cases := []struct {
		name string
		run  func(*testing.T, Setup)
	}{
		{"ExactlyOneResultPerWorkload", testExactlyOnce},
		{"ResultsOutOfOrderKeepTokens", testOutOfOrder},
		{"OutcomesPassThrough", testOutcomes},
		{"RefusedWorkloadsAreFatal", testRefusals},
		{"CreditBlocksPush", testCredit},
		{"PushAfterCloseFails", testPushAfterClose},
		{"CloseUnblocksPush", testCloseUnblocksPush},
		{"ContextUnblocksPush", testContextUnblocksPush},
		{"NoDeliverAfterClose", testNoDeliverAfterClose},
		{"ConcurrencyCap", testConcurrencyCap},
		{"StreamsAreSeparate", testStreamsSeparate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, setup)
		})
	}
}

// fn builds a function the suite configures.
func fn(name string, concurrency int, exec scheduler.ExecutorFunc) scheduler.Function {
	return scheduler.Function{Name: name, Concurrency: concurrency, Timeout: time.Minute, Executor: exec}
}

func workload(function, id string, payload []byte) *scheduler.Workload {
	return &scheduler.Workload{ID: id, Function: function, Payload: payload, Attempt: 1, Created: time.Now()}
}

// collector gathers delivered results, keyed by token.
type collector struct {
	mu      sync.Mutex
	results map[uint64][]scheduler.Outcome
	n       int
	want    int
	all     chan struct{} // closed when n reaches want
}

func newCollector(want int) *collector {
	return &collector{results: make(map[uint64][]scheduler.Outcome), want: want, all: make(chan struct{})}
}

func (c *collector) deliver(rs []scheduler.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rs {
		c.results[r.Token] = append(c.results[r.Token], r.Outcome)
		c.n++
		if c.n == c.want {
			close(c.all)
		}
	}
}

// wait waits until want results have arrived, then for a quiet period in which no
// further (duplicate) result may arrive, and returns each token's single outcome.
func (c *collector) wait(t *testing.T) map[uint64]scheduler.Outcome {
	t.Helper()
	select {
	case <-c.all:
	case <-time.After(waitTimeout):
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Fatalf("got %d results after %v, want %d", c.n, waitTimeout, c.want)
	}
	require.Never(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.n > c.want
	}, quiet, quiet/5, "more results than pushed workloads")
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint64]scheduler.Outcome, len(c.results))
	for token, os := range c.results {
		require.Len(t, os, 1, "token %d got %d results, want exactly 1", token, len(os))
		out[token] = os[0]
	}
	return out
}

func open(t *testing.T, o Opener, name string, deliver func([]scheduler.Result)) scheduler.Stream {
	t.Helper()
	st, err := o.Open(context.Background(), name, deliver)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func push(t *testing.T, st scheduler.Stream, batch ...scheduler.Pushed) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, st.Push(ctx, batch))
}

// gate holds functions until the test releases them; it also lets them go when
// the scheduler cancels their ctx.
type gate struct {
	started chan string   // one send per attempt that began, with the workload ID
	release chan struct{} // one receive lets one attempt finish
	open    chan struct{} // closed: every attempt finishes
	once    sync.Once
}

func newGate(capacity int) *gate {
	return &gate{started: make(chan string, capacity), release: make(chan struct{}), open: make(chan struct{})}
}

func (g *gate) exec(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
	g.started <- w.ID
	select {
	case <-g.release:
	case <-g.open:
	case <-ctx.Done():
		return scheduler.Retriable(scheduler.ReasonShutdown, "cancelled")
	}
	return scheduler.Success()
}

func (g *gate) openAll() { g.once.Do(func() { close(g.open) }) }

// waitStarted waits for n attempts to begin.
func (g *gate) waitStarted(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-g.started:
		case <-time.After(waitTimeout):
			t.Fatalf("%d of %d attempts started after %v", i, n, waitTimeout)
		}
	}
}

// requireNoStart fails if an attempt begins during the quiet period.
func (g *gate) requireNoStart(t *testing.T, why string) {
	t.Helper()
	select {
	case id := <-g.started:
		t.Fatalf("attempt of %q started: %s", id, why)
	case <-time.After(quiet):
	}
}

func testExactlyOnce(t *testing.T, setup Setup) {
	const pushers, perPusher = 4, 2500
	o := setup(t, []scheduler.Function{fn("noop", 8, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Success()
	})})
	c := newCollector(pushers * perPusher)
	st := open(t, o, "exactly-once", c.deliver)

	var wg sync.WaitGroup
	errs := make(chan error, pushers)
	for p := range pushers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			token := uint64(p * perPusher)
			for sent := 0; sent < perPusher; {
				n := min(1+rand.IntN(60), perPusher-sent) // batches of 1..60, some over the window
				batch := make([]scheduler.Pushed, n)
				for i := range batch {
					batch[i] = scheduler.Pushed{Token: token, Workload: workload("noop", strconv.FormatUint(token, 10), nil)}
					token++
				}
				if err := st.Push(ctx, batch); err != nil {
					errs <- fmt.Errorf("pusher %d: %w", p, err)
					return
				}
				sent += n
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got := c.wait(t)
	require.Len(t, got, pushers*perPusher)
	for token := range uint64(pushers * perPusher) {
		o, ok := got[token]
		require.True(t, ok, "no result for token %d", token)
		require.Equal(t, scheduler.OutcomeSuccess, o.Kind, "token %d", token)
	}
}

func testOutOfOrder(t *testing.T, setup Setup) {
	const n = 400
	o := setup(t, []scheduler.Function{fn("jitter", 16, func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
		return scheduler.Retriable(scheduler.ReasonError, "id="+w.ID)
	})})
	c := newCollector(n)
	st := open(t, o, "out-of-order", c.deliver)
	batch := make([]scheduler.Pushed, n)
	for i := range batch {
		// Tokens and IDs differ, so a result matched to the wrong token shows.
		token := uint64(1_000_000 + 7*i)
		batch[i] = scheduler.Pushed{Token: token, Workload: workload("jitter", "w"+strconv.Itoa(i), nil)}
	}
	push(t, st, batch...)
	got := c.wait(t)
	for i, p := range batch {
		require.Equal(t, "id=w"+strconv.Itoa(i), got[p.Token].Err, "token %d", p.Token)
	}
}

func testOutcomes(t *testing.T, setup Setup) {
	outcomes := []scheduler.Outcome{
		scheduler.Success(),
		scheduler.Retriable(scheduler.ReasonError, "connection refused"),
		scheduler.Retriable(scheduler.ReasonTimeout, "ran past 30s"),
		scheduler.Retriable(scheduler.ReasonPanic, "panic: index out of range"),
		scheduler.Retriable(scheduler.ReasonWorkerLost, "worker went away"),
		scheduler.Fatal(scheduler.ReasonFatal, "card declined: ünïcode ✓"),
		{Kind: scheduler.OutcomeRetriable, Reason: scheduler.ReasonError, Err: "rate limited", RetryAfter: 1500 * time.Millisecond},
		{Kind: scheduler.OutcomeRetriable, Reason: scheduler.ReasonError, Err: "later", RetryAfter: 2 * time.Hour},
	}
	o := setup(t, []scheduler.Function{fn("outcomes", 4, func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		i, err := strconv.Atoi(string(w.Payload))
		if err != nil || i < 0 || i >= len(outcomes) {
			return scheduler.Fatal(scheduler.ReasonInvalid, "suite: bad payload "+string(w.Payload))
		}
		return outcomes[i]
	})})
	c := newCollector(len(outcomes))
	st := open(t, o, "outcomes", c.deliver)
	batch := make([]scheduler.Pushed, len(outcomes))
	for i := range outcomes {
		batch[i] = scheduler.Pushed{Token: uint64(i), Workload: workload("outcomes", "o"+strconv.Itoa(i), []byte(strconv.Itoa(i)))}
	}
	push(t, st, batch...)
	got := c.wait(t)
	for i, want := range outcomes {
		require.Equal(t, want, got[uint64(i)], "outcome %d", i)
	}
}

func testRefusals(t *testing.T, setup Setup) {
	var ran atomic.Int64
	o := setup(t, []scheduler.Function{fn("known", 2, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		ran.Add(1)
		return scheduler.Success()
	})})
	c := newCollector(3)
	st := open(t, o, "refusals", c.deliver)
	big := make([]byte, scheduler.DefaultMaxWorkloadBytes+1)
	push(t, st,
		scheduler.Pushed{Token: 1, Workload: workload("nope", "unknown-1", []byte("x"))},
		scheduler.Pushed{Token: 2, Workload: workload("known", "big-1", big)},
		scheduler.Pushed{Token: 3, Workload: workload("known", "fits-1", big[:scheduler.DefaultMaxWorkloadBytes])},
	)
	got := c.wait(t)

	require.Equal(t, scheduler.OutcomeFatal, got[1].Kind)
	require.Equal(t, scheduler.ReasonUnknownFunction, got[1].Reason)
	require.Contains(t, got[1].Err, `"nope"`)

	require.Equal(t, scheduler.OutcomeFatal, got[2].Kind)
	require.Equal(t, scheduler.ReasonTooLarge, got[2].Reason)
	require.Contains(t, got[2].Err, strconv.Itoa(scheduler.DefaultMaxWorkloadBytes+1))

	require.Equal(t, scheduler.Success(), got[3], "a workload of exactly the limit runs")
	require.EqualValues(t, 1, ran.Load(), "only the workload within the limit reaches the function")
}

// fillWindow pushes Window workloads held by g and waits until all of them run.
func fillWindow(t *testing.T, st scheduler.Stream, g *gate, function string) {
	t.Helper()
	batch := make([]scheduler.Pushed, Window)
	for i := range batch {
		batch[i] = scheduler.Pushed{Token: uint64(i), Workload: workload(function, "fill"+strconv.Itoa(i), nil)}
	}
	push(t, st, batch...)
	g.waitStarted(t, Window)
}

// pushAsync pushes one workload on another goroutine and reports Push's error.
func pushAsync(ctx context.Context, st scheduler.Stream, token uint64, function string) <-chan error {
	errc := make(chan error, 1)
	go func() {
		errc <- st.Push(ctx, []scheduler.Pushed{{Token: token, Workload: workload(function, "extra"+strconv.FormatUint(token, 10), nil)}})
	}()
	return errc
}

func requireBlocked(t *testing.T, errc <-chan error, why string) {
	t.Helper()
	select {
	case err := <-errc:
		t.Fatalf("Push returned (err %v) but must block: %s", err, why)
	case <-time.After(quiet):
	}
}

func waitErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("Push still blocked after %v", waitTimeout)
		return nil
	}
}

func testCredit(t *testing.T, setup Setup) {
	// Concurrency above the window, so only credit can hold the extra workload back.
	g := newGate(2 * Window)
	t.Cleanup(g.openAll)
	o := setup(t, []scheduler.Function{fn("held", 2*Window, g.exec)})
	c := newCollector(Window + 1)
	st := open(t, o, "credit", c.deliver)

	fillWindow(t, st, g, "held")
	errc := pushAsync(context.Background(), st, Window, "held")
	requireBlocked(t, errc, "the window is full")
	g.requireNoStart(t, "the window is full, yet a workload beyond it reached the function")

	g.release <- struct{}{} // one result frees one unit of credit
	require.NoError(t, waitErr(t, errc))
	g.waitStarted(t, 1)

	g.openAll()
	got := c.wait(t)
	require.Len(t, got, Window+1)
}

func testPushAfterClose(t *testing.T, setup Setup) {
	o := setup(t, []scheduler.Function{fn("noop", 1, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Success()
	})})
	st, err := o.Open(context.Background(), "closed", func([]scheduler.Result) {})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	err = st.Push(context.Background(), []scheduler.Pushed{{Token: 1, Workload: workload("noop", "late", nil)}})
	require.ErrorIs(t, err, scheduler.ErrStreamClosed)
}

func testCloseUnblocksPush(t *testing.T, setup Setup) {
	g := newGate(2 * Window)
	t.Cleanup(g.openAll)
	o := setup(t, []scheduler.Function{fn("held", 2*Window, g.exec)})
	st := open(t, o, "close-unblocks", func([]scheduler.Result) {})

	fillWindow(t, st, g, "held")
	errc := pushAsync(context.Background(), st, Window, "held")
	requireBlocked(t, errc, "the window is full")
	require.NoError(t, st.Close())
	require.ErrorIs(t, waitErr(t, errc), scheduler.ErrStreamClosed)
}

func testContextUnblocksPush(t *testing.T, setup Setup) {
	g := newGate(2 * Window)
	t.Cleanup(g.openAll)
	o := setup(t, []scheduler.Function{fn("held", 2*Window, g.exec)})
	st := open(t, o, "ctx-unblocks", func([]scheduler.Result) {})

	fillWindow(t, st, g, "held")
	ctx, cancel := context.WithCancel(context.Background())
	errc := pushAsync(ctx, st, Window, "held")
	requireBlocked(t, errc, "the window is full")
	cancel()
	require.ErrorIs(t, waitErr(t, errc), context.Canceled)
}

func testNoDeliverAfterClose(t *testing.T, setup Setup) {
	g := newGate(2 * Window)
	t.Cleanup(g.openAll)
	var finished atomic.Int64
	o := setup(t, []scheduler.Function{fn("held", 2*Window, func(ctx context.Context, w *scheduler.Workload, timeout time.Duration) scheduler.Outcome {
		defer finished.Add(1)
		return g.exec(ctx, w, timeout)
	})})
	var closed, late atomic.Bool
	st := open(t, o, "no-deliver", func([]scheduler.Result) {
		if closed.Load() {
			late.Store(true)
		}
	})
	fillWindow(t, st, g, "held")
	require.NoError(t, st.Close())
	closed.Store(true)

	g.openAll() // every attempt finishes now and has a result to (not) deliver
	require.Eventually(t, func() bool { return finished.Load() == Window }, waitTimeout, time.Millisecond)
	require.Never(t, late.Load, quiet, quiet/5, "deliver was called after Close returned")
}

func testConcurrencyCap(t *testing.T, setup Setup) {
	const limit, n = 3, 24
	g := newGate(n)
	t.Cleanup(g.openAll)
	var cur, peak atomic.Int64
	o := setup(t, []scheduler.Function{fn("capped", limit, func(ctx context.Context, w *scheduler.Workload, timeout time.Duration) scheduler.Outcome {
		c := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		return g.exec(ctx, w, timeout)
	})})
	c := newCollector(n)
	st := open(t, o, "cap", c.deliver)
	batch := make([]scheduler.Pushed, n)
	for i := range batch {
		batch[i] = scheduler.Pushed{Token: uint64(i), Workload: workload("capped", "c"+strconv.Itoa(i), nil)}
	}
	push(t, st, batch...)

	g.waitStarted(t, limit)
	g.requireNoStart(t, "the function already runs its Concurrency attempts")
	for range n - limit { // let them through one at a time; the cap must still hold
		g.release <- struct{}{}
		g.waitStarted(t, 1)
	}
	g.openAll()
	c.wait(t)
	require.EqualValues(t, limit, peak.Load(), "peak concurrent attempts")
}

func testStreamsSeparate(t *testing.T, setup Setup) {
	const n = 200
	o := setup(t, []scheduler.Function{fn("echo", 8, func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		return scheduler.Retriable(scheduler.ReasonError, w.ID)
	})})
	streams := []string{"left", "right"}
	collectors := make([]*collector, len(streams))
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for i, name := range streams {
		collectors[i] = newCollector(n)
		st := open(t, o, name, collectors[i].deliver)
		wg.Go(func() {
			batch := make([]scheduler.Pushed, n)
			for j := range batch { // the same tokens on both streams
				batch[j] = scheduler.Pushed{Token: uint64(j), Workload: workload("echo", name+"/"+strconv.Itoa(j), nil)}
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := st.Push(ctx, batch); err != nil {
				errs <- fmt.Errorf("push to stream %s: %w", name, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for i, name := range streams {
		got := collectors[i].wait(t)
		for token, o := range got {
			require.True(t, strings.HasPrefix(o.Err, name+"/"), "stream %s got result %q", name, o.Err)
			require.Equal(t, name+"/"+strconv.FormatUint(token, 10), o.Err)
		}
	}
}
