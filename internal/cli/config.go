package cli

import (
	"context"
	"fmt"

	"github.com/kasync/kasync/internal/config"
)

func runConfig(_ context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		return usagef("want `kasync config check FILE`")
	}
	f := newFlags(e, "config check", "FILE")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return usagef("want exactly one FILE, got %d arguments", f.NArg())
	}
	summary, err := config.Check(f.Arg(0))
	if err != nil {
		return usageError{err}
	}
	fmt.Fprint(e.stdout, summary)
	return nil
}

// loadConfig loads and validates a config file; every problem is a usage error.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usagef("--config FILE is required")
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}
