package rpc

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

// pushRaw opens a Push stream by hand with hello, sends n workloads of "f" (tokens
// 1..n; odd tokens fail) and returns every outcome it receives, by token, with the
// number of packed successes among them and the credit returned, in Credit messages
// and in OutcomeBatch.credit.
func pushRaw(t *testing.T, e *env, hello *kasyncv1.PushHello, n int) (got map[uint64]scheduler.Outcome, packed int, cr returned) {
	t.Helper()
	stream, err := e.api.Push(ctxT(t))
	require.NoError(t, err)
	require.NoError(t, stream.Send(&kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Hello{Hello: hello}}))
	first, err := stream.Recv()
	require.NoError(t, err)
	require.GreaterOrEqual(t, int(first.GetCredit().GetWorkloads()), n)
	ws := make([]*kasyncv1.Workload, n)
	for i := range ws {
		ws[i] = WorkloadToProto(uint64(i+1), wl("f", "w-"+strconv.Itoa(i+1)))
	}
	require.NoError(t, stream.Send(&kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Batch{Batch: &kasyncv1.WorkloadBatch{Workloads: ws}}}))
	got = map[uint64]scheduler.Outcome{}
	// Every outcome frees a credit; wait for all of it, whichever way it comes.
	for len(got) < n || cr.inMessages+cr.inBatches < n {
		msg, err := stream.Recv()
		require.NoError(t, err)
		if c := msg.GetCredit(); c != nil {
			cr.inMessages += int(c.GetWorkloads())
			continue
		}
		b := msg.GetOutcomes()
		require.NotNil(t, b, "a push response is credit or outcomes")
		cr.inBatches += int(b.GetCredit())
		require.LessOrEqual(t, int(b.GetCredit()), len(b.GetSucceeded())+len(b.GetOutcomes()),
			"a batch frees no more credit than it has outcomes")
		for _, token := range b.GetSucceeded() {
			require.NotContains(t, got, token, "token %d answered twice", token)
			got[token] = scheduler.Success()
			packed++
		}
		for _, po := range b.GetOutcomes() {
			r, err := OutcomeFromProto(po)
			require.NoError(t, err)
			require.NotContains(t, got, r.Token, "token %d answered twice", r.Token)
			got[r.Token] = r.Outcome
		}
	}
	require.NoError(t, stream.CloseSend())
	return got, packed, cr
}

// returned is the credit a push stream got back after its first grant.
type returned struct{ inMessages, inBatches int }

// A tailer that asks for packed successes gets plain successes as tokens and every
// other outcome whole; one that does not (an older tailer) gets Outcome messages only.
func TestPushPackedSuccessesNegotiated(t *testing.T) {
	t.Parallel()
	const n = 60
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 8, Timeout: time.Minute,
		Executor: scheduler.ExecutorFunc(func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			i, _ := strconv.Atoi(w.ID[2:])
			if i%2 == 1 {
				return scheduler.Retriable(scheduler.ReasonError, "odd "+w.ID)
			}
			return scheduler.Success()
		})}}, envOptions{})
	for _, packed := range []bool{true, false} {
		got, nPacked, _ := pushRaw(t, e, &kasyncv1.PushHello{Tailer: "t", PackedSuccesses: packed}, n)
		for token := uint64(1); token <= n; token++ {
			if token%2 == 1 {
				require.Equal(t, scheduler.Retriable(scheduler.ReasonError, "odd w-"+strconv.FormatUint(token, 10)), got[token])
			} else {
				require.Equal(t, scheduler.Success(), got[token])
			}
		}
		if packed {
			require.Equal(t, n/2, nPacked, "every plain success packed")
		} else {
			require.Zero(t, nPacked, "an older tailer gets no packed successes")
		}
	}
}

// A tailer that takes credit in outcome batches gets every freed slot back there and
// no Credit message after the first; one that does not (an older tailer) gets Credit
// messages only. Either way the credit returned is one per outcome.
func TestPushCreditInOutcomesNegotiated(t *testing.T) {
	t.Parallel()
	const n = 300
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 8, Timeout: time.Minute,
		Executor: scheduler.ExecutorFunc(func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
			return scheduler.Success()
		})}}, envOptions{})
	for _, inBatch := range []bool{true, false} {
		got, _, cr := pushRaw(t, e, &kasyncv1.PushHello{Tailer: "t", PackedSuccesses: true, CreditInOutcomes: inBatch}, n)
		require.Len(t, got, n)
		if inBatch {
			require.Equal(t, returned{inBatches: n}, cr)
		} else {
			require.Equal(t, returned{inMessages: n}, cr, "an older tailer gets Credit messages")
		}
	}
}

func TestOutcomeBatchPacksOnlyPlainSuccesses(t *testing.T) {
	t.Parallel()
	rs := []scheduler.Result{
		{Token: 1, Outcome: scheduler.Success()},
		{Token: 2, Outcome: scheduler.Outcome{Kind: scheduler.OutcomeSuccess, Err: "a note"}},
		{Token: 3, Outcome: scheduler.Fatal(scheduler.ReasonFatal, "no")},
		{Token: 4, Outcome: scheduler.Success()},
	}
	b := outcomeBatch(rs, true)
	require.Equal(t, []uint64{1, 4}, b.GetSucceeded())
	require.Len(t, b.GetOutcomes(), 2)
	require.EqualValues(t, 2, b.GetOutcomes()[0].GetToken(), "a success with more to say goes whole")
	require.EqualValues(t, 3, b.GetOutcomes()[1].GetToken())
	b = outcomeBatch(rs, false)
	require.Empty(t, b.GetSucceeded())
	require.Len(t, b.GetOutcomes(), 4)
}

// Packed successes on the Work stream end their tasks like TaskResult messages: the
// welcome offers them, and a batch of packed ids, results and credit frees every slot.
func TestWorkPackedSuccesses(t *testing.T) {
	t.Parallel()
	const n = 20
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: n, Timeout: time.Minute}}, envOptions{})
	w := dialBatchWorker(t, e, "packer", n)
	defer w.cancel()
	r := newResults()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "p-" + strconv.Itoa(i)
	}
	pushAllOf(t, e, r, "f", ids...)
	tasks, _ := recvTasks(t, w, n)
	var succeeded []uint64
	var results []*kasyncv1.TaskResult
	want := map[string]scheduler.Outcome{}
	for i, task := range tasks {
		if i%3 == 0 {
			o := scheduler.Fatal(scheduler.ReasonFatal, "third "+task.GetId())
			results = append(results, TaskResultToProto(task.GetTaskId(), o))
			want[task.GetId()] = o
			continue
		}
		succeeded = append(succeeded, task.GetTaskId())
		want[task.GetId()] = scheduler.Success()
	}
	w.send(t, &kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Results{Results: &kasyncv1.TaskResultBatch{
		Succeeded: succeeded, Results: results, Credit: n}}})
	r.waitN(t, n)
	for i, id := range ids {
		require.Equal(t, want[id], r.outcome(t, uint64(i+1)), id)
	}
	ws := e.pool.Workers()
	require.Len(t, ws, 1)
	require.Equal(t, n, ws[0].Free, "the batch's credit freed every slot")
}
