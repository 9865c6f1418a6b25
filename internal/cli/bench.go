package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/kasync/kasync/internal/bench"
)

func runBench(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "bench", "[--records N] [--modes LIST] [--out DIR] [flags]")
	var o bench.Options
	brokers := f.String("brokers", "", "use this cluster (comma-separated seed brokers) instead of starting the embedded broker in its own process")
	f.IntVar(&o.Records, "records", 1_000_000, "records in the backlog each Kafka mode reads")
	f.IntVar(&o.Runs, "runs", 1, "run every mode this many times, interleaved; the table shows medians and the spread")
	f.IntVar(&o.Size, "size", 100, "payload bytes per record (at least 16)")
	f.IntVar(&o.Partitions, "partitions", 12, "partitions of the benchmark topics")
	f.IntVar(&o.Keys, "keys", 1000, "distinct record keys")
	f.IntVar(&o.Concurrency, "concurrency", 64, "kasync function concurrency, SDK worker capacity and Asynq concurrency")
	f.IntVar(&o.ChildGOMAXPROCS, "child-gomaxprocs", 0, "GOMAXPROCS of every measured process, as a container with that many CPUs would set (0: the Go default, every core)")
	modes := f.String("modes", strings.Join(bench.AllModes, ","), "modes to run, comma-separated, in this order")
	f.Float64Var(&o.LatencyFraction, "latency-fraction", 0.5, "latency phase: offer this fraction of each mode's measured peak rate")
	f.Float64Var(&o.LatencyMaxRate, "latency-max-rate", 0, "latency phase: offer at most this many records per second (0: no cap)")
	f.DurationVar(&o.LatencyDuration, "latency-duration", 5_000_000_000, "latency phase: how long to produce at the fixed rate")
	f.BoolVar(&o.Lateness, "lateness", true, "measure delay-rung lateness on a millisecond ladder under load")
	f.IntVar(&o.AsynqRecords, "asynq-records", 100_000, "tasks in Asynq's backlog")
	f.StringVar(&o.RedisServer, "redis-server", "", "redis-server binary for the Asynq peer (default: from PATH)")
	f.StringVar(&o.AsynqPeer, "asynq-peer", "", "kasync-bench-asynq binary (default: next to kasync, then PATH; `make bench-peers` builds it)")
	f.DurationVar(&o.Stall, "stall", 60_000_000_000, "kill a mode that makes no progress for this long")
	f.StringVar(&o.ProfileDir, "profile-dir", "", "write CPU and allocation profiles of every measured kasync process into this directory")
	out := f.String("out", "", "write report.json and chart.png into this directory")
	quiet := f.Bool("quiet", false, "no progress display")
	log, err := f.setup(e, args)
	if err != nil {
		return err
	}
	o.Logger = log
	if *brokers != "" {
		o.Brokers = splitAddrs(*brokers)
		if len(o.Brokers) == 0 {
			return usagef("--brokers %q names no broker; use HOST:PORT[,HOST:PORT...]", *brokers)
		}
	}
	o.Modes = splitAddrs(*modes)
	if len(o.Modes) == 0 {
		return usagef("--modes: name at least one of %s", strings.Join(bench.AllModes, ", "))
	}
	if o.Exe, err = os.Executable(); err != nil {
		return fmt.Errorf("finding the kasync binary to start the benchmark's processes: %w", err)
	}
	if err := o.WithDefaults().Validate(); err != nil {
		return usageError{err}
	}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o750); err != nil {
			return usagef("--profile-dir %s: %v", o.ProfileDir, err)
		}
	}
	if !*quiet {
		o.Progress = e.stderr
		o.TTY = isTerminal(e.stderr)
	}
	r, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	if err := bench.WriteTable(e.stdout, r); err != nil {
		return err
	}
	if *out != "" {
		if err := bench.WriteOut(*out, r); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s/report.json and %s/chart.png\n", *out, *out)
	}
	return nil
}

// runBenchChild is one measured process of `kasync bench`; not for people.
func runBenchChild(ctx context.Context, e env, args []string) error {
	if err := bench.RunChild(ctx, args, e.stdout, e.stderr); err != nil {
		return usageError{err}
	}
	return nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
