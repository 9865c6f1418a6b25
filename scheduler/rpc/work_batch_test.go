package rpc

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

// dialBatchWorker dials a raw worker that takes TaskBatch and checks that the welcome
// offers result batches.
func dialBatchWorker(t *testing.T, e *env, id string, capacity uint32) *rawWorker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	stream, err := e.api.Work(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Hello{Hello: &kasyncv1.WorkerHello{
		WorkerId: id, Functions: []string{"f"}, Capacity: capacity, TaskBatches: true}}}))
	msg, err := stream.Recv()
	require.NoError(t, err)
	require.True(t, msg.GetWelcome().GetResultBatches(), "the welcome offers result batches")
	require.True(t, msg.GetWelcome().GetPackedSuccesses(), "the welcome offers packed successes")
	return &rawWorker{stream: stream, cancel: cancel}
}

// recvTasks receives until n tasks arrived, from Task and TaskBatch messages, and
// returns them with the number of messages they came in.
func recvTasks(t *testing.T, w *rawWorker, n int) (tasks []*kasyncv1.Task, msgs int) {
	t.Helper()
	for len(tasks) < n {
		m := w.recv(t)
		msgs++
		switch x := m.GetMsg().(type) {
		case *kasyncv1.WorkResponse_Task:
			tasks = append(tasks, x.Task)
		case *kasyncv1.WorkResponse_Tasks:
			require.NotEmpty(t, x.Tasks.GetTasks(), "a TaskBatch has at least one task")
			tasks = append(tasks, x.Tasks.GetTasks()...)
		default:
			t.Fatalf("unexpected message %v", m)
		}
	}
	require.Len(t, tasks, n, "no more tasks than credit")
	return tasks, msgs
}

func resultBatch(credit uint32, rs ...*kasyncv1.TaskResult) *kasyncv1.WorkRequest {
	return &kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Results{Results: &kasyncv1.TaskResultBatch{Results: rs, Credit: credit}}}
}

func packedBatch(succeeded []uint64, rs ...*kasyncv1.TaskResult) *kasyncv1.WorkRequest {
	return &kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Results{Results: &kasyncv1.TaskResultBatch{Succeeded: succeeded, Results: rs}}}
}

func TestWorkBatchesBothWays(t *testing.T) {
	t.Parallel()
	const n = 40
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: n, Timeout: time.Minute}}, envOptions{})
	w := dialBatchWorker(t, e, "batcher", n)
	defer w.cancel()
	r := newResults()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "b-" + strconv.Itoa(i)
	}
	pushAllOf(t, e, r, "f", ids...)
	tasks, msgs := recvTasks(t, w, n)
	t.Logf("%d tasks in %d messages", n, msgs)

	// Every task answered in one message, which also frees every slot.
	results := make([]*kasyncv1.TaskResult, n)
	for i, task := range tasks {
		o := scheduler.Success()
		if i%2 == 1 {
			o = scheduler.Retriable(scheduler.ReasonError, "odd "+task.GetId())
		}
		results[i] = TaskResultToProto(task.GetTaskId(), o)
	}
	w.send(t, resultBatch(n, results...))
	r.waitN(t, n)
	byID := make(map[string]*kasyncv1.Task, n)
	for _, task := range tasks {
		byID[task.GetId()] = task
	}
	require.Len(t, byID, n, "each workload sent once")
	for i, task := range tasks {
		token := uint64(0)
		for j, id := range ids {
			if id == task.GetId() {
				token = uint64(j + 1)
			}
		}
		o := r.outcome(t, token)
		if i%2 == 1 {
			require.Equal(t, scheduler.Retriable(scheduler.ReasonError, "odd "+task.GetId()), o)
		} else {
			require.Equal(t, scheduler.Success(), o)
		}
	}
	ws := e.pool.Workers()
	require.Len(t, ws, 1)
	require.Equal(t, n, ws[0].Free, "the batch's credit freed every slot")
	require.Zero(t, ws[0].Running)

	// A batch of credit alone is fine too: but there is no slot left to credit.
	w.send(t, resultBatch(1))
	requireCode(t, w.ended(t), codes.InvalidArgument, "over the capacity")
}

func TestWorkOldWorkerGetsOneTaskPerMessage(t *testing.T) {
	t.Parallel()
	const n = 16
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: n, Timeout: time.Minute}}, envOptions{})
	w, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "old", Functions: []string{"f"}, Capacity: n})
	require.NoError(t, err)
	defer w.cancel()
	r := newResults()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "o-" + strconv.Itoa(i)
	}
	pushAllOf(t, e, r, "f", ids...)
	for range n {
		task := w.recv(t).GetTask()
		require.NotNil(t, task, "a worker that did not ask for batches gets plain Task messages")
		w.answer(t, task.GetTaskId(), scheduler.Success())
		w.credit(t, 1)
	}
	r.waitN(t, n)
}

func TestWorkResultBatchViolations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 2, Timeout: time.Minute}}, envOptions{})
	ok := func(id uint64) *kasyncv1.TaskResult { return TaskResultToProto(id, scheduler.Success()) }
	// A batch means what its items would mean one by one: results before the bad item
	// are applied (the held task is then answered), the bad item ends the stream.
	cases := map[string]struct {
		batch    func(held uint64) *kasyncv1.WorkRequest
		want     string
		answered bool
	}{
		"empty batch": {func(uint64) *kasyncv1.WorkRequest { return resultBatch(0) }, "no results, no succeeded tasks and no credit", false},
		"packed unknown": {func(h uint64) *kasyncv1.WorkRequest {
			return packedBatch([]uint64{h + 1000}, ok(h))
		}, "does not hold", false},
		"packed, then result again": {func(h uint64) *kasyncv1.WorkRequest {
			return packedBatch([]uint64{h}, ok(h))
		}, "does not hold", true},
		"unknown task":      {func(h uint64) *kasyncv1.WorkRequest { return resultBatch(0, ok(h+1000), ok(h)) }, "does not hold", false},
		"answered, unknown": {func(h uint64) *kasyncv1.WorkRequest { return resultBatch(0, ok(h), ok(h+1000)) }, "does not hold", true},
		"duplicate":         {func(h uint64) *kasyncv1.WorkRequest { return resultBatch(0, ok(h), ok(h)) }, "does not hold", true},
		"no kind":           {func(h uint64) *kasyncv1.WorkRequest { return resultBatch(0, &kasyncv1.TaskResult{TaskId: h}) }, "outcome kind 0", false},
		"bad kind later":    {func(h uint64) *kasyncv1.WorkRequest { return resultBatch(0, ok(h), &kasyncv1.TaskResult{TaskId: h}) }, "outcome kind 0", false},
		"credit over":       {func(h uint64) *kasyncv1.WorkRequest { return resultBatch(3, ok(h)) }, "over the capacity 1", true},
		"success w/ reason": {func(h uint64) *kasyncv1.WorkRequest {
			return resultBatch(1, &kasyncv1.TaskResult{TaskId: h, Kind: kasyncv1.OutcomeKind_OUTCOME_KIND_SUCCESS, Reason: "x"})
		}, "reason must be empty", false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			bad := dialBatchWorker(t, e, "bad", 1)
			r := newResults()
			task, _ := servedWorkload(t, e, bad, r, 1, "f")
			good, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "good", Functions: []string{"f"}, Capacity: 1})
			require.NoError(t, err)
			defer good.cancel()
			bad.send(t, c.batch(task.GetTaskId()))
			requireCode(t, bad.ended(t), codes.InvalidArgument, c.want)
			if !c.answered {
				// The task the bad worker held went to the good one.
				again := good.recv(t).GetTask()
				require.Equal(t, task.GetId(), again.GetId())
				good.answer(t, again.GetTaskId(), scheduler.Success())
				good.credit(t, 1)
			}
			require.Equal(t, scheduler.Success(), r.waitOutcome(t, 1))
			requireServes(t, e, good, "f")
			require.Len(t, e.pool.Workers(), 1, "only the good worker is left")
			good.cancel()
			require.Eventually(t, func() bool { return len(e.pool.Workers()) == 0 }, waitTimeout, time.Millisecond)
		})
	}
}

func TestSendMsgsBatchesRunsOfTasks(t *testing.T) {
	t.Parallel()
	small := wl("f", "s")
	big := wl("f", "big")
	big.Payload = make([]byte, maxBatchBytes/3)
	task := func(id uint64, w *scheduler.Workload) outMsg { return outMsg{id: id, w: w, timeout: time.Second} }
	var msgs []outMsg
	for i := range maxTasksPerBatch + 10 {
		msgs = append(msgs, task(uint64(i+1), small))
	}
	msgs = append(msgs, outMsg{id: 7}) // a cancel splits the run
	msgs = append(msgs, task(1000, small), task(1001, big), task(1002, big), task(1003, big), task(1004, small))

	shape := func(batches bool) (got []string, ids []uint64) {
		var sent []*kasyncv1.WorkResponse
		require.NoError(t, sendMsgs(func(m *kasyncv1.WorkResponse) error { sent = append(sent, m); return nil }, msgs, batches))
		for _, m := range sent {
			switch x := m.GetMsg().(type) {
			case *kasyncv1.WorkResponse_Task:
				got = append(got, "task")
				ids = append(ids, x.Task.GetTaskId())
				require.EqualValues(t, 1000, x.Task.GetTimeoutMs())
			case *kasyncv1.WorkResponse_Tasks:
				got = append(got, "batch:"+strconv.Itoa(len(x.Tasks.GetTasks())))
				size := 0
				for _, tk := range x.Tasks.GetTasks() {
					ids = append(ids, tk.GetTaskId())
					size += proto.Size(tk)
				}
				require.LessOrEqual(t, size, maxBatchBytes)
			case *kasyncv1.WorkResponse_Cancel:
				got = append(got, "cancel")
				ids = append(ids, x.Cancel.GetTaskId())
			}
		}
		return got, ids
	}
	var want []uint64
	for _, m := range msgs {
		want = append(want, m.id)
	}
	got, ids := shape(true)
	require.Equal(t, want, ids, "order kept")
	// A cancel ends a run; 3 big tasks do not fit in one batch with a small one.
	require.Equal(t, []string{"batch:256", "batch:10", "cancel", "batch:3", "batch:2"}, got)
	got, ids = shape(false)
	require.Equal(t, want, ids, "order kept")
	require.Len(t, got, len(msgs))
	for _, g := range got {
		require.Contains(t, []string{"task", "cancel"}, g)
	}
}

// TestPoolTimeoutsModel drives the pool's one timeout timer by hand (the timeouts are
// far off, so it never fires by itself): tasks with random timeouts, some answered,
// then expiry at random moments must end exactly the unanswered tasks that are due.
func TestPoolTimeoutsModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		p, err := NewPool(PoolOptions{MaxRedispatch: -1}) // a lost task ends its Execute
		require.NoError(t, err)
		const n = 40
		wk, out := fakeWorker(p, "w", n, "f")
		type exec struct {
			timeout time.Duration
			done    chan scheduler.Outcome
		}
		execs := make([]exec, n)
		for i := range execs {
			execs[i] = exec{timeout: time.Hour + time.Duration(rng.IntN(10))*time.Minute, done: make(chan scheduler.Outcome, 1)}
			if rng.IntN(5) == 0 {
				execs[i].timeout = 0 // no timeout
			}
			go func() { execs[i].done <- p.Execute(context.Background(), wl("f", strconv.Itoa(i)), execs[i].timeout) }()
		}
		require.Eventually(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(wk.tasks) == n }, waitTimeout, time.Millisecond)
		p.mu.Lock()
		byTask := make(map[uint64]*poolTask, n)
		for id, task := range wk.tasks {
			byTask[id] = task
		}
		start := time.Time{}
		for _, task := range byTask {
			if start.IsZero() || task.lastBeat.Before(start) {
				start = task.lastBeat
			}
		}
		p.mu.Unlock()
		// Answer about half.
		answered := make(map[uint64]bool)
		for id := range byTask {
			if rng.IntN(2) == 0 {
				answered[id] = true
				require.NoError(t, p.result(wk, TaskResultToProto(id, scheduler.Success())))
			}
		}
		for _, at := range []time.Duration{time.Hour + 3*time.Minute, time.Hour + 7*time.Minute, 2 * time.Hour} {
			now := start.Add(at)
			p.expireTimeouts(now)
			p.mu.Lock()
			for id, task := range byTask {
				due := task.timeout > 0 && !task.deadline.After(now)
				_, held := wk.tasks[id]
				switch {
				case answered[id]:
					require.False(t, held, "round %d: answered task %d left", round, id)
				case due:
					require.True(t, task.abandoned, "round %d: due task %d not timed out", round, id)
					require.Equal(t, -1, task.heapIdx)
				default:
					require.False(t, task.abandoned, "round %d: task %d timed out early", round, id)
				}
			}
			for i, task := range p.deadlines {
				require.Equal(t, i, task.heapIdx)
				require.False(t, task.abandoned)
			}
			p.mu.Unlock()
		}
		// After all that only the tasks without a timeout are unanswered and waiting.
		timedOut := 0
		for i := range execs {
			if execs[i].timeout == 0 {
				continue
			}
			o := <-execs[i].done
			if o.Kind == scheduler.OutcomeRetriable {
				require.Equal(t, scheduler.ReasonTimeout, o.Reason)
				timedOut++
			}
		}
		cancels := 0
		for _, m := range out.take(nil) {
			if m.w == nil {
				cancels++
			}
		}
		require.Equal(t, timedOut, cancels, "one CancelTask per timed-out task")
		p.mu.Lock()
		require.Empty(t, p.deadlines)
		p.mu.Unlock()
		p.detach(wk, context.Canceled)
		for i := range execs {
			if execs[i].timeout == 0 {
				o := <-execs[i].done
				require.True(t, o.Kind == scheduler.OutcomeSuccess || o.Reason == scheduler.ReasonWorkerLost, "%v", o)
			}
		}
		require.NoError(t, p.Close())
	}
}

// FuzzTaskResultBatch feeds arbitrary TaskResultBatch messages to a worker that holds
// tasks 1..3 and has one free slot of four: whatever comes, the pool never panics,
// refuses with a protocol error what is not allowed, never answers a task twice and
// never lets free slots plus held tasks exceed the capacity.
func FuzzTaskResultBatch(f *testing.F) {
	ok := func(id uint64) *kasyncv1.TaskResult { return TaskResultToProto(id, scheduler.Success()) }
	for _, b := range []*kasyncv1.TaskResultBatch{
		{},
		{Credit: 1},
		{Results: []*kasyncv1.TaskResult{ok(1), ok(2)}, Credit: 2},
		{Results: []*kasyncv1.TaskResult{ok(1), ok(1)}},
		{Results: []*kasyncv1.TaskResult{ok(3), {TaskId: 2}}, Credit: 9},
		{Results: []*kasyncv1.TaskResult{{TaskId: 1, Kind: kasyncv1.OutcomeKind_OUTCOME_KIND_FATAL, Reason: "fatal", Error: "e"}}},
		{Succeeded: []uint64{1, 2}, Credit: 2},
		{Succeeded: []uint64{1}, Results: []*kasyncv1.TaskResult{ok(1)}},
		{Succeeded: []uint64{2, 9}, Results: []*kasyncv1.TaskResult{ok(3)}, Credit: 1},
	} {
		data, err := proto.Marshal(b)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b kasyncv1.TaskResultBatch
		if proto.Unmarshal(data, &b) != nil {
			return
		}
		p := NewWorkerPool(nil)
		defer func() { _ = p.Close() }()
		wk := p.attach("w", []string{"f"}, 4, 3, newOutbox())
		tasks := make([]*poolTask, 3)
		p.mu.Lock()
		for i := range tasks {
			tasks[i] = &poolTask{id: uint64(i + 1), wk: wk, result: make(chan taskEnd, 1), heapIdx: -1}
			wk.tasks[tasks[i].id] = tasks[i]
		}
		p.mu.Unlock()
		err := p.results(wk, b.GetSucceeded(), b.GetResults(), b.GetCredit())
		if err != nil {
			require.ErrorIs(t, err, errProtocol)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		require.LessOrEqual(t, wk.free+len(wk.tasks), wk.capacity)
		for _, task := range tasks {
			_, held := wk.tasks[task.id]
			require.Equal(t, !held, len(task.result) == 1, "task %d: answered once iff no longer held", task.id)
		}
	})
}
