package tasks

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func limits() Limits {
	return Limits{Functions: map[string]bool{"charge": true, "closed": false}, MaxWorkloadBytes: 100,
		Tolerance: 5 * time.Millisecond, MaxAhead: 7 * 24 * time.Hour}
}

func dur(d time.Duration) *time.Duration { return &d }
func at(t time.Time) *time.Time          { return &t }

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		req   Request
		plan  Plan
		kind  Kind
		field string
		want  string
	}{
		{name: "now", req: Request{Function: "charge"}, plan: Plan{Due: now}},
		{name: "delay within tolerance runs now", req: Request{Function: "charge", Delay: dur(5 * time.Millisecond)},
			plan: Plan{Due: now.Add(5 * time.Millisecond)}},
		{name: "delay beyond tolerance waits", req: Request{Function: "charge", Delay: dur(200 * time.Millisecond)},
			plan: Plan{Due: now.Add(200 * time.Millisecond), Later: true}},
		{name: "run_at in the past runs now", req: Request{Function: "charge", RunAt: at(now.Add(-time.Hour))}, plan: Plan{Due: now}},
		{name: "run_at ahead", req: Request{Function: "charge", RunAt: at(now.Add(time.Hour))}, plan: Plan{Due: now.Add(time.Hour), Later: true}},
		{name: "run_at at the limit", req: Request{Function: "charge", RunAt: at(now.Add(7 * 24 * time.Hour))},
			plan: Plan{Due: now.Add(7 * 24 * time.Hour), Later: true}},
		{name: "exactly the size limit", req: Request{Function: "charge", Key: make([]byte, 10), Payload: make([]byte, 80),
			Headers: []Header{{Key: "a", Value: make([]byte, 9)}}}, plan: Plan{Due: now}},

		{name: "empty function", req: Request{}, kind: Invalid, field: "function", want: "empty; name the function to run (one of: charge, closed)"},
		{name: "unknown function", req: Request{Function: "x"}, kind: Invalid, field: "function", want: `"x" is not a configured function`},
		{name: "not submittable", req: Request{Function: "closed"}, kind: NotEnabled, field: "function", want: "set submit: true"},
		{name: "too large", req: Request{Function: "charge", Payload: make([]byte, 95), Headers: []Header{{Key: "ab", Value: make([]byte, 4)}}},
			kind: Invalid, field: "payload", want: "the task is 101 bytes (key + payload + headers); node.max_workload_bytes allows at most 100"},
		{name: "reserved header", req: Request{Function: "charge", Headers: []Header{{Key: "ok"}, {Key: "Kasync-Due"}}},
			kind: Invalid, field: "headers[1]", want: "kasync's own"},
		{name: "nameless header", req: Request{Function: "charge", Headers: []Header{{Value: []byte("v")}}}, kind: Invalid, field: "headers[0]", want: "no name"},
		{name: "both", req: Request{Function: "charge", Delay: dur(time.Second), RunAt: at(now)}, kind: Invalid, field: "delay", want: "both delay and run_at"},
		{name: "negative delay", req: Request{Function: "charge", Delay: dur(-time.Second)}, kind: Invalid, field: "delay", want: "-1s is negative"},
		{name: "delay too far", req: Request{Function: "charge", Delay: dur(8 * 24 * time.Hour)}, kind: Invalid, field: "delay",
			want: "at most 168h0m0s ahead (7 days)"},
		{name: "run_at too far", req: Request{Function: "charge", RunAt: at(now.Add(365 * 24 * time.Hour))}, kind: Invalid, field: "run_at",
			want: "2027-03-01T12:00:00Z is 8760h0m0s ahead, beyond the limit: a task may be due at most 168h0m0s ahead (7 days)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Check(tt.req, now, limits())
			if tt.kind == 0 {
				require.NoError(t, err)
				require.Equal(t, tt.plan, plan)
				return
			}
			var p *Problem
			require.True(t, errors.As(err, &p), "%v", err)
			require.Equal(t, tt.kind, p.Kind)
			require.Equal(t, tt.field, p.Field)
			require.Contains(t, p.Msg, tt.want)
		})
	}
}

func TestCheckID(t *testing.T) {
	t.Parallel()
	require.NoError(t, CheckID("kasync.fn.charge/0/42"))
	for _, bad := range []string{"", "x", "/0/1", "t//1", "t/0/", "t/1"} {
		require.Error(t, CheckID(bad), bad)
	}
}

// TestMergeOrderIndependent: the transitions of a task, merged in any order, give the
// same final state, which keeps the earliest created time and the last error.
func TestMergeOrderIndependent(t *testing.T) {
	t.Parallel()
	id := "kasync.fn.charge/0/1"
	history := []Status{
		{ID: id, Function: "charge", State: StateNew, CreatedMs: 100, UpdatedMs: 100, DueMs: 100},
		{ID: id, Function: "charge", State: StateEnqueued, Attempts: 1, CreatedMs: 101, UpdatedMs: 110},
		{ID: id, Function: "charge", State: StateRetriable, Attempts: 1, LastError: "boom", Reason: "error", UpdatedMs: 120, DueMs: 200},
		{ID: id, Function: "charge", State: StateEnqueued, Attempts: 2, CreatedMs: 120, UpdatedMs: 200},
		{ID: id, Function: "charge", State: StateSuccess, Attempts: 2, CreatedMs: 120, UpdatedMs: 210},
	}
	want := Status{ID: id, Function: "charge", State: StateSuccess, Attempts: 2, LastError: "boom", Reason: "error", CreatedMs: 100, UpdatedMs: 210}
	for range 200 {
		order := rand.Perm(len(history))
		var cur *Status
		for _, i := range order {
			s := Merge(cur, history[i])
			cur = &s
		}
		require.Equal(t, want, *cur, "order %v", order)
	}
	// A final state stays final: a late ENQUEUED of an earlier attempt changes nothing.
	s := Merge(&want, history[1])
	require.Equal(t, StateSuccess, s.State)
}

func TestGrants(t *testing.T) {
	t.Parallel()
	require.NoError(t, Grants(nil).Check("anyone", "charge"), "no grants: every authenticated identity")
	g := Grants{"shop": {"charge"}, "ops": {"*"}, "tailer": nil}
	require.NoError(t, g.Check("shop", "charge"))
	require.NoError(t, g.Check("ops", "refund"))
	require.ErrorContains(t, g.Check("shop", "refund"), `identity "shop" may not submit to function "refund"`)
	require.ErrorContains(t, g.Check("tailer", "charge"), "may not submit")
	require.ErrorContains(t, g.Check("stranger", "charge"), "not in node.grpc_auth.identities")
}
