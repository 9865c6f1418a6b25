package cli

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/config"
)

// TestSubmitAndTaskRoundTrip: against `kasync dev` (whose demo function echo accepts
// submitted tasks), `kasync submit` reads the payload from standard input and prints a
// task id; `kasync task ID --json` follows it to SUCCESS, and the plain form prints its
// fields. Bad usage and bad input exit 2 with the flag or field named.
func TestSubmitAndTaskRoundTrip(t *testing.T) {
	t.Parallel()
	out, errOut, done, cancel := devOnFreePorts(t)
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			require.Equal(t, ExitOK, code, errOut.String())
		case <-time.After(30 * time.Second):
			t.Error("kasync dev did not stop within 30s")
		}
	})
	schedLine := regexp.MustCompile(`Scheduler:\s+(\S+)`)
	var m []string
	require.Eventually(t, func() bool {
		m = schedLine.FindStringSubmatch(out.String())
		return m != nil
	}, 30*time.Second, 10*time.Millisecond, "the banner names the scheduler; stderr: %s", errOut)
	addr := m[1]

	code, id, serr := kasync(context.Background(), "hello from stdin", "submit", "--function", "echo", "--key", "k",
		"--header", "trace=t-1", "--priority", "2", "--scheduler", addr)
	require.Equal(t, ExitOK, code, serr)
	id = strings.TrimSpace(id)
	require.True(t, strings.HasPrefix(id, config.IngestTopic("echo")+"/"), id)

	var st taskJSON
	require.Eventually(t, func() bool {
		code, tout, _ := kasync(context.Background(), "", "task", id, "--json", "--scheduler", addr)
		if code != ExitOK {
			return false // not indexed yet
		}
		require.NoError(t, json.Unmarshal([]byte(tout), &st))
		return st.State == "SUCCESS"
	}, 30*time.Second, 10*time.Millisecond, "the task reaches SUCCESS")
	require.Equal(t, id, st.ID)
	require.Equal(t, "echo", st.Function)
	require.EqualValues(t, 1, st.Attempts)
	require.NotEmpty(t, st.Created)
	require.Contains(t, errOut.String(), "hello from stdin", "echo ran the payload")

	code, tout, _ := kasync(context.Background(), "", "task", "--scheduler", addr, id)
	require.Equal(t, ExitOK, code)
	require.Contains(t, tout, "State:      SUCCESS")
	require.Contains(t, tout, "Function:   echo")

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"submit", "--scheduler", addr}, "--function: required"},
		{[]string{"submit", "--function", "echo", "--delay", "1s", "--run-at", "2030-01-01T00:00:00Z", "--scheduler", addr}, "--delay and --run-at"},
		{[]string{"submit", "--function", "echo", "--run-at", "tomorrow", "--scheduler", addr}, "--run-at \"tomorrow\": not RFC 3339"},
		{[]string{"submit", "--function", "echo", "--header", "novalue", "--scheduler", addr}, "not name=value"},
		{[]string{"submit", "--function", "nope", "--payload", "x", "--scheduler", addr}, `function: "nope" is not a configured function`},
		{[]string{"submit", "--function", "echo", "--payload", "x", "--delay", "-1s", "--scheduler", addr}, "delay: -1s is negative"},
		{[]string{"submit", "--function", "echo", "--payload", "x", "--run-at", "2099-01-01T00:00:00Z", "--scheduler", addr}, "at most 168h0m0s ahead"},
		{[]string{"task", "--scheduler", addr}, "give the task id"},
		{[]string{"task", "not-an-id", "--scheduler", addr}, "task_id:"},
		{[]string{"task", config.IngestTopic("echo") + "/0/999999", "--scheduler", addr}, "no task"},
	} {
		code, _, errOut := kasync(context.Background(), "", tt.args...)
		require.Equal(t, ExitUsage, code, "%v: %s", tt.args, errOut)
		require.Contains(t, errOut, tt.want, tt.args)
	}
}
