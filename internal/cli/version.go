package cli

import (
	"context"
	"fmt"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X github.com/kasync/kasync/internal/cli.version=v1.2.3".
var version = "dev"

func runVersion(_ context.Context, e env, args []string) error {
	f := newFlags(e, "version", "")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.noArgs(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "kasync %s\n", version)
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(e.stdout, "go %s\n", bi.GoVersion)
		for _, dep := range bi.Deps {
			switch dep.Path {
			case "github.com/twmb/franz-go", "github.com/twmb/franz-go/pkg/kfake", "github.com/cockroachdb/pebble/v2", "google.golang.org/grpc":
				fmt.Fprintf(e.stdout, "%s %s\n", dep.Path, dep.Version)
			}
		}
	}
	return nil
}
