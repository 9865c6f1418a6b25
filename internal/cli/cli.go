package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit statuses.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// env is what a command gets from the process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

// hidden commands are not listed: processes another command starts.
var hidden = map[string]bool{"bench-child": true}

var commands = map[string]command{
	"dev":     {"run everything in one process on the embedded development broker", runDev},
	"run":     {"run a production node from a config file", runNode},
	"broker":  {"run the embedded Kafka-compatible development broker alone", runBroker},
	"worker":  {"serve the built-in demo functions to a scheduler as an SDK worker", runWorker},
	"produce": {"produce one record per line of standard input", runProduce},
	"config":  {"`config check FILE`: validate a config file", runConfig},
	"version": {"print the version", runVersion},
	"dlq":     {"list, show and redrive dead letters (`kasync dlq -h`)", runDLQ},
	"status":  {"tailer lag, delay rungs and dead letters, read from the brokers or a node (--node)", runStatus},
	"submit":  {"submit one task to a function, now or for later; prints its task id", runSubmit},
	"task":    {"`task ID`: a task's state, attempts, last error and times", runTask},
	"bench":   {"measure kasync against raw franz-go, a hand-written consumer and Asynq", runBench},
	// bench-child is a measured process `kasync bench` starts.
	"bench-child": {"one measured process of kasync bench", runBenchChild},
}

// usageError is bad usage or bad configuration: exit status 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Main runs the command line and returns the exit status. SIGINT and SIGTERM cancel the
// command's context; commands drain and return.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, env{stdin: stdin, stdout: stdout, stderr: stderr})
}

// run is Main with the context given: tests cancel it instead of sending a signal.
func run(ctx context.Context, args []string, e env) int {
	stdout, stderr := e.stdout, e.stderr
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kasync: unknown command %q; run `kasync help` for the list\n", args[0])
		return ExitUsage
	}
	err := cmd.run(ctx, e, args[1:])
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "kasync %s: %v\n", args[0], err)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "kasync %s: %v\n", args[0], err)
		return ExitFailure
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "kasync runs a registered function for every event in a Kafka topic, at least once.")
	fmt.Fprintln(w, "\nUsage: kasync COMMAND [flags]   (kasync COMMAND -h for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		if hidden[name] {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
}

// flags is a flag set that reports errors as usage errors and has the logging flags.
type flags struct {
	*flag.FlagSet
	logFormat string
	logLevel  string
}

func newFlags(e env, name, synopsis string) *flags {
	fs := flag.NewFlagSet("kasync "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	f := &flags{FlagSet: fs}
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: kasync %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return f
}

func (f *flags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// noArgs rejects positional arguments a command does not take.
func (f *flags) noArgs() error {
	if f.NArg() > 0 {
		return usagef("unexpected argument %q (flags go before it? see -h)", f.Arg(0))
	}
	return nil
}

// setup parses args for a command that takes flags only, and returns its logger.
func (f *flags) setup(e env, args []string) (*slog.Logger, error) {
	if err := f.parse(args); err != nil {
		return nil, err
	}
	if err := f.noArgs(); err != nil {
		return nil, err
	}
	return f.logger(e)
}

func (f *flags) logger(e env) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(f.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	default:
		return nil, usagef("--log-format %q: use text or json", f.logFormat)
	}
}
