package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kasync/kasync/internal/bench/benchproto"
)

// TaskType is the type of every task the peer enqueues and serves.
const TaskType = "bench:noop"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the run failed or was interrupted
	exitUsage = 2 // bad command line
)

const usage = `usage:
  kasync-bench-asynq serve   --redis ADDR --n N [--concurrency 64] [--queue default]
                             [--progress-every 100ms] [--stall 30s] [--task-check-interval 1ms] [--servers 1]
  kasync-bench-asynq enqueue --redis ADDR --n N [--size 16] [--rate 0] [--queue default] [--clients 8]
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program: it parses args, runs one subcommand until done or ctx ends,
// and returns the exit code. Events and reports go to stdout, logs to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		cfg, err := parseServe(args[1:], stderr)
		if err != nil {
			return usageExit(err, stderr)
		}
		if _, err := serve(ctx, cfg, benchproto.NewWriter(stdout), logger); err != nil {
			logger.Error("serve failed", "err", err)
			return exitError
		}
		return exitOK
	case "enqueue":
		cfg, err := parseEnqueue(args[1:], stderr)
		if err != nil {
			return usageExit(err, stderr)
		}
		rep, err := enqueue(ctx, cfg, logger)
		if err != nil {
			logger.Error("enqueue failed", "err", err)
			return exitError
		}
		b, err := json.Marshal(rep)
		if err != nil {
			logger.Error("enqueue: encoding the report", "err", err)
			return exitError
		}
		if _, err := stdout.Write(append(b, '\n')); err != nil {
			logger.Error("enqueue: writing the report", "err", err)
			return exitError
		}
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "unknown subcommand %q: use serve or enqueue\n%s", args[0], usage)
		return exitUsage
	}
}

// errReported is a command-line error the flag package already printed, with the flags.
var errReported = errors.New("bad command line")

func usageExit(err error, stderr io.Writer) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errReported):
		return exitUsage
	}
	fmt.Fprintf(stderr, "%v\n%s", err, usage)
	return exitUsage
}

// newFlagSet returns a flag set that reports parse errors to the caller, not by exiting,
// and prints its flags on -h or a parse error.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: kasync-bench-asynq %s [flags]\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses args and refuses positional leftovers, which are usually a typo.
func parseArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errReported, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q: every setting is a --flag", fs.Name(), fs.Arg(0))
	}
	return nil
}

// Validation helpers: each names the flag and says how to fix it.

func checkRedis(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("--redis must be host:port of the Redis server (got %q), e.g. --redis 127.0.0.1:6379", addr)
	}
	return nil
}

func checkQueue(q string) error {
	if strings.TrimSpace(q) == "" || strings.TrimSpace(q) != q {
		return fmt.Errorf("--queue must be a non-empty name without surrounding spaces (got %q), e.g. --queue default", q)
	}
	return nil
}

func checkN(n int64) error {
	if n < 1 {
		return fmt.Errorf("--n must be ≥ 1 (got %d): pass the number of tasks, e.g. --n 100000", n)
	}
	return nil
}

func checkPositiveDuration(name string, d time.Duration, example string) error {
	if d <= 0 {
		return fmt.Errorf("--%s must be > 0 (got %v), e.g. --%s %s", name, d, name, example)
	}
	return nil
}

// asynqLogger sends Asynq's logs to slog. Asynq filters them by level itself.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "from", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "from", "asynq") }

// Fatal honours asynq.Logger's contract: log, then exit 1. Asynq v0.26.0 never calls it.
func (a asynqLogger) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), "from", "asynq", "fatal", true)
	os.Exit(exitError)
}
