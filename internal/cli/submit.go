package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
)

// headerFlags collects repeated --header k=v flags.
type headerFlags []*kasyncv1.Header

func (h *headerFlags) String() string { return "" }

func (h *headerFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not name=value", v)
	}
	*h = append(*h, &kasyncv1.Header{Key: []byte(k), Value: []byte(val)})
	return nil
}

// tasksClient dials the scheduler's Tasks API with the security flags.
func tasksClient(addr string, sec *securityFlags) (kasyncv1.TasksClient, func(), error) {
	if addr == "" {
		return nil, nil, usagef("--scheduler: give the address of a node's gRPC API, like 127.0.0.1:7070")
	}
	dial, err := sec.dialOptions()
	if err != nil {
		return nil, nil, err
	}
	if !sec.usesTLS() {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	conn, err := grpc.NewClient(addr, dial...)
	if err != nil {
		return nil, nil, usagef("--scheduler %q: %v", addr, err)
	}
	return kasyncv1.NewTasksClient(conn), func() { _ = conn.Close() }, nil
}

// usesTLS reports whether the flags ask for TLS.
func (s *securityFlags) usesTLS() bool {
	return *s.tls || *s.ca != "" || *s.cert != "" || *s.key != "" || *s.serverName != ""
}

// rpcError turns a status from the Tasks API into a command error: the caller's fault
// (bad input, unknown function or task) is a usage error, exit 2.
func rpcError(what string, err error) error {
	st := status.Convert(err)
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated:
		return usagef("%s", st.Message())
	}
	return fmt.Errorf("%s: %s (%s)", what, st.Message(), st.Code())
}

func runSubmit(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "submit", "--function F [--payload P | < payload] [--key K] [--header k=v]... [--delay D | --run-at RFC3339] [--priority N] [--scheduler ADDR] [TLS/token flags]")
	function := f.String("function", "", "the function to run (configured with submit: true); required")
	payload := f.String("payload", "", "the task's payload (default: standard input, read to its end)")
	key := f.String("key", "", "the task's key")
	var headers headerFlags
	f.Var(&headers, "header", "a header name=value; repeat for more")
	delay := f.Duration("delay", 0, "run this long from now (e.g. 90s, 2h); at most 7 days")
	runAt := f.String("run-at", "", "run at this time, RFC 3339 (e.g. 2026-03-01T12:00:00Z); a time past runs now")
	priority := f.Int("priority", 0, "priority in the function's queue; higher runs first")
	addr := f.String("scheduler", "127.0.0.1:7070", "a node's gRPC address")
	sec := addSecurityFlags(f)
	if _, err := f.setup(e, args); err != nil {
		return err
	}
	delaySet := false
	f.Visit(func(fl *flag.Flag) { delaySet = delaySet || fl.Name == "delay" })
	req := &kasyncv1.SubmitRequest{Function: *function, Key: []byte(*key), Headers: headers, Priority: int32(*priority)}
	switch {
	case *function == "":
		return usagef("--function: required; name the function to run")
	case delaySet && *runAt != "":
		return usagef("--delay and --run-at: give one of them, or neither to run now")
	case *priority != int(int32(*priority)):
		return usagef("--priority %d: use a 32-bit integer", *priority)
	case delaySet:
		req.When = &kasyncv1.SubmitRequest_DelayMs{DelayMs: delay.Milliseconds()}
	case *runAt != "":
		at, err := time.Parse(time.RFC3339, *runAt)
		if err != nil {
			return usagef("--run-at %q: not RFC 3339; write it like 2026-03-01T12:00:00Z", *runAt)
		}
		req.When = &kasyncv1.SubmitRequest_RunAtUnixMs{RunAtUnixMs: at.UnixMilli()}
	}
	if *payload != "" {
		req.Payload = []byte(*payload)
	} else {
		b, err := io.ReadAll(e.stdin)
		if err != nil {
			return fmt.Errorf("reading the payload from standard input: %w", err)
		}
		req.Payload = b
	}
	client, closeConn, err := tasksClient(*addr, sec)
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := client.Submit(ctx, req)
	if err != nil {
		return rpcError("submit", err)
	}
	fmt.Fprintln(e.stdout, resp.GetTaskId())
	if resp.GetScheduled() {
		fmt.Fprintf(e.stderr, "scheduled: due %s\n", time.UnixMilli(resp.GetDueUnixMs()).UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func runTask(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "task", "ID [--json] [--scheduler ADDR] [TLS/token flags]")
	addr := f.String("scheduler", "127.0.0.1:7070", "a node's gRPC address")
	asJSON := f.Bool("json", false, "print the status as JSON")
	sec := addSecurityFlags(f)
	// The id comes first (kasync task ID --json) or after the flags.
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := f.parse(args); err != nil {
		return err
	}
	if id == "" && f.NArg() > 0 {
		id = f.Arg(0)
		if err := f.Parse(f.Args()[1:]); err != nil {
			return usageError{err}
		}
	}
	if err := f.noArgs(); err != nil {
		return err
	}
	if id == "" {
		return usagef("give the task id Submit printed, like kasync task kasync.fn.echo/0/42")
	}
	client, closeConn, err := tasksClient(*addr, sec)
	if err != nil {
		return err
	}
	defer closeConn()
	st, err := client.GetTask(ctx, &kasyncv1.GetTaskRequest{TaskId: id})
	if err != nil {
		return rpcError("task", err)
	}
	if *asJSON {
		return printTaskJSON(e.stdout, st)
	}
	printTask(e.stdout, st)
	return nil
}

// taskJSON is the --json shape of a task status.
type taskJSON struct {
	ID        string `json:"id"`
	Function  string `json:"function"`
	State     string `json:"state"`
	Attempts  uint32 `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Created   string `json:"created,omitempty"`
	Updated   string `json:"updated,omitempty"`
	Due       string `json:"due,omitempty"`
}

func stateName(s kasyncv1.TaskState) string {
	return strings.TrimPrefix(s.String(), "TASK_STATE_")
}

func msTime(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

func printTaskJSON(w io.Writer, st *kasyncv1.TaskStatus) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(taskJSON{ID: st.GetTaskId(), Function: st.GetFunction(), State: stateName(st.GetState()),
		Attempts: st.GetAttempts(), LastError: st.GetLastError(), Reason: st.GetReason(), Created: msTime(st.GetCreatedUnixMs()),
		Updated: msTime(st.GetUpdatedUnixMs()), Due: msTime(st.GetDueUnixMs())}); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

func printTask(w io.Writer, st *kasyncv1.TaskStatus) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-11s %s\n", k+":", v)
		}
	}
	row("Task", st.GetTaskId())
	row("Function", st.GetFunction())
	row("State", stateName(st.GetState()))
	row("Attempts", fmt.Sprint(st.GetAttempts()))
	row("Last error", st.GetLastError())
	row("Reason", st.GetReason())
	row("Created", msTime(st.GetCreatedUnixMs()))
	row("Updated", msTime(st.GetUpdatedUnixMs()))
	row("Due", msTime(st.GetDueUnixMs()))
}
