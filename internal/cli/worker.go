package cli

import (
	"context"
	"log/slog"
	"strings"

	"github.com/kasync/kasync/internal/demo"
	kruntime "github.com/kasync/kasync/runtime"
)

func runWorker(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "worker", "[--scheduler ADDRS] [--capacity N] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--token-file FILE]")
	addrs := f.String("scheduler", "127.0.0.1:7070", "scheduler gRPC addresses, comma-separated: the worker serves every one at once, sharing --capacity")
	capacity := f.Int("capacity", 64, "most tasks running at once, over all schedulers (at least one per --scheduler address)")
	id := f.String("id", "", "worker id (default hostname-pid)")
	fns := f.String("functions", "echo,fail,sleep", "demo functions to serve, comma-separated (the scheduler must configure each)")
	sec := addSecurityFlags(f)
	log, err := f.setup(e, args)
	if err != nil {
		return err
	}
	dial, err := sec.dialOptions()
	if err != nil {
		return err
	}
	if *capacity < 1 || *capacity > 100000 {
		return usagef("--capacity %d: use 1 to 100000", *capacity)
	}
	var list []string
	for _, a := range strings.Split(*addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			list = append(list, a)
		}
	}
	if len(list) == 0 {
		return usagef("--scheduler: name at least one address like 127.0.0.1:7070")
	}
	if *capacity < len(list) {
		return usagef("--capacity %d: each of the %d --scheduler addresses needs at least one slot; raise --capacity to %d or more", *capacity, len(list), len(list))
	}
	reg, err := demoFunctions(*fns, log)
	if err != nil {
		return err
	}
	w, err := kruntime.NewWorker(kruntime.WorkerConfig{
		Addrs: list, Registry: reg, Capacity: *capacity, WorkerID: *id, Logger: log, DialOptions: dial,
	})
	if err != nil {
		return usageError{err}
	}
	return w.Run(ctx)
}

// demoFunctions is a registry of the named demo functions.
func demoFunctions(names string, log *slog.Logger) (*kruntime.Registry, error) {
	all := demo.Registry(log)
	reg := kruntime.NewRegistry()
	for _, name := range strings.Split(names, ",") {
		name = strings.TrimSpace(name)
		fn, ok := all.Lookup(name)
		if !ok {
			return nil, usagef("--functions: %q is not a demo function; choose from %s", name, strings.Join(all.Names(), ", "))
		}
		if err := reg.Register(name, fn); err != nil {
			return nil, usagef("--functions: %v", err)
		}
	}
	return reg, nil
}
