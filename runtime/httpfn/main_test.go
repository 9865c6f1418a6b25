package httpfn

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every test closes its
// servers and its executors' idle connections.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
