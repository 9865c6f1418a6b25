// Package cli implements the kasync command line: parsing flags, loading configuration
// and running the parts that other packages build. It holds no business logic.
//
// Guarantees:
//
//  1. Exit status: 0 on success, 1 on a runtime failure, 2 on bad usage or bad
//     configuration (a usageError anywhere in the chain).
//  2. Every error names the flag or the config field and what would be right.
//  3. SIGINT and SIGTERM cancel the command's context: long-running commands (dev, run,
//     broker, worker) drain and return, and the process exits 0 after a clean drain.
package cli
