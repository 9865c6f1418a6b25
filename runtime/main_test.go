package runtime_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind, including the goroutines
// of functions that ignored their timeout: each test lets them finish.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
