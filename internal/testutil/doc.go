// Package testutil holds small helpers shared by tests: a buffer safe for the concurrent
// writes of a running command or logger, and a free loopback address. It has no
// invariants beyond those of its two helpers and is imported by tests only.
package testutil
