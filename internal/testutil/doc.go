// Package testutil holds small helpers shared by tests: a buffer safe for the concurrent
// writes of a running command or logger, a free loopback address, and a build of the
// kasync binary for tests that run it as a process. It has no invariants beyond those
// of its helpers and is imported by tests only.
package testutil
