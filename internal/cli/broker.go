package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kasync/kasync/internal/broker"
)

func runBroker(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "broker", "[--listen ADDR] [--data-dir DIR]")
	listen := f.String("listen", broker.DefaultListen, "address to listen on (loopback only)")
	dataDir := f.String("data-dir", "./kasync-broker-data", `keep topics, records and offsets here across restarts ("" keeps them in memory)`)
	partitions := f.Int("partitions", int(broker.DefaultPartitions), "partitions of topics created without a count")
	syncWrites := f.Bool("sync-writes", false, "fsync every produced batch before acknowledging it (with --data-dir)")
	topics := f.String("topics", "", "topics to create at start, comma-separated NAME or NAME:PARTITIONS")
	log, err := f.setup(e, args)
	if err != nil {
		return err
	}
	opts := broker.Options{Listen: *listen, DataDir: *dataDir, SyncWrites: *syncWrites, Partitions: int32(*partitions), Logger: log}
	if *partitions < 1 || *partitions > 10000 {
		return usagef("--partitions %d: use 1 to 10000", *partitions)
	}
	if opts.Topics, err = parseTopics(*topics); err != nil {
		return err
	}
	if err := opts.WithDefaults().Validate(); err != nil {
		return usageError{err}
	}
	b, err := broker.Start(opts)
	if err != nil {
		return fmt.Errorf("starting the broker: %w", err)
	}
	fmt.Fprintf(e.stdout, "%s\n\nCtrl-C stops it.\n", b.Banner())
	<-ctx.Done()
	return b.Close()
}

func parseTopics(s string) (map[string]int32, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]int32{}
	for _, spec := range strings.Split(s, ",") {
		name, count, hasCount := strings.Cut(strings.TrimSpace(spec), ":")
		if name == "" {
			return nil, usagef("--topics %q: empty topic name", s)
		}
		var n int32
		if hasCount {
			var err error
			p, err := strconv.ParseInt(count, 10, 32)
			if err != nil || p < 1 {
				return nil, usagef("--topics: %q: partitions must be a positive number, like %s:6", spec, name)
			}
			n = int32(p)
		}
		out[name] = n
	}
	return out, nil
}
