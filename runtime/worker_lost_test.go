package runtime

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/rpc"
)

// runLog records, per task id, the attempts a function saw.
type runLog struct {
	mu       sync.Mutex
	attempts map[string][]int
}

func (l *runLog) add(t *Task) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.attempts == nil {
		l.attempts = make(map[string][]int)
	}
	l.attempts[t.ID] = append(l.attempts[t.ID], t.Attempt)
}

func (l *runLog) snapshot() map[string][]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string][]int, len(l.attempts))
	for id, as := range l.attempts {
		out[id] = append([]int(nil), as...)
	}
	return out
}

func TestWorkerKilledWithTasksInFlightTheyRunElsewhere(t *testing.T) {
	t.Parallel()
	const n = 100
	c := newClusterWith(t, clusterOptions{timeout: time.Hour, concurrency: n}, "f")

	// Worker 1 holds every task: its function blocks until its ctx ends.
	held := make(chan struct{}, n)
	var onFirst runLog
	first := NewRegistry()
	require.NoError(t, first.Register("f", func(ctx context.Context, task *Task) error {
		onFirst.add(task)
		held <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}))
	dialer := &killableDialer{}
	stopFirst, _, _ := runWorker(t, newTestWorker(t, c.addr, first, func(cfg *WorkerConfig) {
		cfg.WorkerID, cfg.Capacity = "first", n
		cfg.DialOptions = append(cfg.DialOptions, dialer.option())
	}))
	for token := uint64(1); token <= n; token++ {
		c.push(t, token, "f", "")
	}
	for range n {
		select {
		case <-held:
		case <-time.After(waitTimeout):
			t.Fatalf("worker 1 holds %d of %d tasks after %v", len(onFirst.snapshot()), n, waitTimeout)
		}
	}

	// Worker 2 joins with less capacity than the backlog, then worker 1 dies as with
	// kill -9: its connections are cut and it never comes back.
	var onSecond runLog
	second := NewRegistry()
	require.NoError(t, second.Register("f", func(_ context.Context, task *Task) error {
		onSecond.add(task)
		return nil
	}))
	stopSecond, _, _ := runWorker(t, newTestWorker(t, c.addr, second, func(cfg *WorkerConfig) {
		cfg.WorkerID, cfg.Capacity = "second", 10
	}))
	dialer.killForGood()

	for token := uint64(1); token <= n; token++ {
		require.Equal(t, scheduler.Success(), c.outcome(t, token), "token %d", token)
	}
	runs := onSecond.snapshot()
	require.Len(t, runs, n, "every task ran on worker 2")
	for token := uint64(1); token <= n; token++ {
		id := "t/0/" + strconv.FormatUint(token, 10)
		require.Equal(t, []int{1}, runs[id], "task %s ran once on worker 2, as attempt 1", id)
	}
	for id, attempts := range onFirst.snapshot() {
		require.Equal(t, []int{1}, attempts, "task %s ran once on worker 1", id)
	}
	require.NoError(t, stopFirst())
	require.NoError(t, stopSecond())
}

func TestWorkerHeartbeatsKeepLongTasks(t *testing.T) {
	t.Parallel()
	// The worker is configured to heartbeat once an hour; the scheduler's announced
	// timeout makes it heartbeat every third of a second instead.
	const timeout = time.Second
	c := newClusterWith(t, clusterOptions{timeout: time.Hour, pool: rpc.PoolOptions{HeartbeatTimeout: timeout}}, "long")
	var runs runLog
	reg := NewRegistry()
	require.NoError(t, reg.Register("long", func(ctx context.Context, task *Task) error {
		runs.add(task)
		select {
		case <-time.After(2*timeout + timeout/5):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	stop, _, _ := runWorker(t, newTestWorker(t, c.addr, reg, func(cfg *WorkerConfig) { cfg.Heartbeat = time.Hour }))
	c.push(t, 1, "long", "")
	require.Equal(t, scheduler.Success(), c.outcome(t, 1))
	require.Equal(t, map[string][]int{"t/0/1": {1}}, runs.snapshot(), "never taken as lost, so run once")
	require.NoError(t, stop())
}

func TestWorkerHungFunctionFreesSlotAtTimeout(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 200*time.Millisecond, "f", "hang")
	release, hungDone := make(chan struct{}), make(chan struct{})
	reg := NewRegistry()
	require.NoError(t, reg.Register("f", func(context.Context, *Task) error {
		return nil
	}))
	require.NoError(t, reg.Register("hang", func(context.Context, *Task) error {
		defer close(hungDone)
		<-release // ignores its ctx
		return nil
	}))
	stop, _, _ := runWorker(t, newTestWorker(t, c.addr, reg, func(cfg *WorkerConfig) { cfg.Capacity = 1 }))

	c.push(t, 1, "hang", "")
	o := c.outcome(t, 1)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonTimeout, o.Reason)
	// The one slot serves the next task although the hung function still runs.
	c.push(t, 2, "f", "")
	require.Equal(t, scheduler.Success(), c.outcome(t, 2))
	select {
	case <-hungDone:
		t.Fatal("the hung function returned before it was released")
	default:
	}
	close(release)
	<-hungDone
	require.NoError(t, stop())
}

// headerStream is a client stream whose response header is md.
type headerStream struct {
	grpc.ClientStream
	md  metadata.MD
	err error
}

func (h headerStream) Header() (metadata.MD, error) { return h.md, h.err }

func TestWorkerHeartbeatFollowsSchedulerTimeout(t *testing.T) {
	t.Parallel()
	w := &Worker{cfg: WorkerConfig{Heartbeat: 5 * time.Second}, log: slog.New(slog.DiscardHandler)}
	cases := []struct {
		header              metadata.MD
		err                 error
		every, schedTimeout time.Duration
	}{
		{nil, nil, 5 * time.Second, 0},
		{nil, errors.New("no header"), 5 * time.Second, 0},
		{metadata.Pairs(rpc.HeartbeatTimeoutHeader, "15000"), nil, 5 * time.Second, 15 * time.Second},
		{metadata.Pairs(rpc.HeartbeatTimeoutHeader, "600"), nil, 200 * time.Millisecond, 600 * time.Millisecond},
		{metadata.Pairs(rpc.HeartbeatTimeoutHeader, "2"), nil, time.Millisecond, 2 * time.Millisecond},
		{metadata.Pairs(rpc.HeartbeatTimeoutHeader, "soon"), nil, 5 * time.Second, 0},
		{metadata.Pairs(rpc.HeartbeatTimeoutHeader, "-5"), nil, 5 * time.Second, 0},
	}
	for _, c := range cases {
		every, schedTimeout := w.heartbeatInterval(headerStream{md: c.header, err: c.err})
		require.Equal(t, c.every, every, "header %v", c.header)
		require.Equal(t, c.schedTimeout, schedTimeout, "header %v", c.header)
	}
	// The SDK's defaults are safe with the scheduler's: three heartbeats per timeout.
	require.Equal(t, rpc.DefaultHeartbeatTimeout, 3*DefaultWorkerHeartbeat)
}
