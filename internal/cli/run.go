package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kasync/kasync/internal/bench"
	"github.com/kasync/kasync/internal/node"
)

func runNode(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "run", "--config FILE [--roles tailer,scheduler,delay] [--scheduler ADDR]")
	path := f.String("config", "", "the config file (required)")
	roles := f.String("roles", "", "comma-separated roles to run: tailer, scheduler, delay (default: all)")
	schedAddr := f.String("scheduler", "", "with --roles tailer or delay but not scheduler: the scheduler's gRPC address")
	cpuProfile := f.String("cpuprofile", "", "write a CPU profile to this file until the node stops")
	memProfile := f.String("memprofile", "", "write an allocation profile to this file when the node stops")
	log, err := f.setup(e, args)
	if err != nil {
		return err
	}
	stopProfiles, err := bench.StartProfiles(*cpuProfile, *memProfile, e.stderr)
	if err != nil {
		return usageError{err}
	}
	defer stopProfiles()
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	r, err := parseRoles(*roles)
	if err != nil {
		return err
	}
	if (r.Tailer || r.Delay) && !r.Scheduler && *schedAddr == "" {
		return usagef("--roles tailer and delay need --scheduler ADDR (the gRPC address of a node running the scheduler role), or add the scheduler role")
	}
	n, err := node.Start(ctx, node.Options{Config: cfg, Roles: r, SchedulerAddr: *schedAddr, Logger: log})
	if err != nil {
		return err
	}
	stopReload := reloadOnHangup(n)
	defer stopReload()
	return n.Wait()
}

// reloadOnHangup re-reads the node's gRPC certificates and tokens file on each SIGHUP
// (the node also polls them every few seconds); the returned func stops it.
func reloadOnHangup(n *node.Node) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-hup:
				_ = n.ReloadSecurity() // a failure is logged by the node, which keeps the old files
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(quit)
		<-done
	}
}

func parseRoles(s string) (node.Roles, error) {
	var r node.Roles
	if s == "" {
		return r, nil
	}
	for _, role := range strings.Split(s, ",") {
		switch strings.TrimSpace(role) {
		case "tailer":
			r.Tailer = true
		case "scheduler":
			r.Scheduler = true
		case "delay":
			r.Delay = true
		default:
			return r, usagef("--roles: unknown role %q; use tailer, scheduler and/or delay (comma-separated)", role)
		}
	}
	if !r.Tailer && !r.Scheduler && !r.Delay {
		return r, usageError{errors.New("--roles: name at least one role")}
	}
	return r, nil
}
