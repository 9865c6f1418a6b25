// Command kasync is the one kasync binary: a development environment, a production node,
// the embedded broker, an SDK worker and the tools around them. See `kasync help`.
package main

import (
	"os"

	"github.com/kasync/kasync/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
