package rpc

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

func TestWorkloadRoundTrip(t *testing.T) {
	t.Parallel()
	w := &scheduler.Workload{
		ID: "orders/3/42", Function: "charge", Key: []byte("k"), Payload: []byte("p"),
		Headers: []scheduler.Header{{Key: "a", Value: []byte("1")}, {Key: "\xff", Value: nil}},
		Attempt: 3, Priority: -2, Created: time.UnixMilli(1_700_000_000_123), Source: "kafka://orders",
	}
	got, err := WorkloadFromProto(WorkloadToProto(9, w))
	require.NoError(t, err)
	require.Equal(t, w, got)

	task := TaskToProto(5, w, 1500*time.Microsecond)
	require.EqualValues(t, 2, task.GetTimeoutMs(), "sub-millisecond remainders round up")
	require.Equal(t, w, TaskWorkload(task))
	require.Equal(t, 2*time.Millisecond, TaskTimeout(task))
}

func TestOutcomeTextIsValidUTF8AndBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxErrorText) // 2 bytes each
	po := OutcomeToProto(1, scheduler.Retriable(scheduler.ReasonError, "\xff"+long))
	require.True(t, utf8.ValidString(po.GetError()))
	require.LessOrEqual(t, len(po.GetError()), maxErrorText)
	_, err := proto.Marshal(po)
	require.NoError(t, err)
}

// FuzzWorkloadFromProto decodes arbitrary Push messages as the server does: no input
// may panic, and a workload it accepts survives a round trip.
func FuzzWorkloadFromProto(f *testing.F) {
	seed, _ := proto.Marshal(&kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Batch{Batch: &kasyncv1.WorkloadBatch{
		Workloads: []*kasyncv1.Workload{WorkloadToProto(1, wl("f", "a"))},
	}}})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req kasyncv1.PushRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		for _, pw := range req.GetBatch().GetWorkloads() {
			w, err := WorkloadFromProto(pw)
			if err != nil {
				continue
			}
			require.GreaterOrEqual(t, w.Attempt, 1)
			back, err := WorkloadFromProto(WorkloadToProto(pw.GetToken(), w))
			require.NoError(t, err)
			require.Equal(t, w, back)
		}
	})
}

// FuzzTaskResultFromProto decodes arbitrary Work messages as the pool does.
func FuzzTaskResultFromProto(f *testing.F) {
	seed, _ := proto.Marshal(&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Result{
		Result: TaskResultToProto(3, scheduler.Retriable(scheduler.ReasonError, "boom")),
	}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req kasyncv1.WorkRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		r := req.GetResult()
		if r == nil {
			return
		}
		o, err := TaskResultFromProto(r)
		if err != nil {
			return
		}
		require.Contains(t, []scheduler.OutcomeKind{scheduler.OutcomeSuccess, scheduler.OutcomeRetriable, scheduler.OutcomeFatal}, o.Kind)
		require.GreaterOrEqual(t, o.RetryAfter, time.Duration(0))
	})
}
