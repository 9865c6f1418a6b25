package crashtest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kasync/kasync/internal/testutil"
)

// The kasync binary, built at most once per test process, on first use: `go test -list`,
// the benchmark and fuzz passes (-run='^$') and -short runs never pay for the build.
var (
	buildOnce sync.Once
	binDir    string // removed by TestMain when every test is done
	binPath   string
	binErr    error
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if binDir != "" {
			if err := os.RemoveAll(binDir); err != nil {
				fmt.Fprintf(os.Stderr, "crashtest: removing the kasync binary: %v\n", err)
			}
		}
		os.Exit(code)
	}))
}

// kasyncBinary returns the path of the kasync binary, building it the first time. It is
// built without -race: only the test process (the worker that records executions) is
// race-built.
func kasyncBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "kasync-crashtest-bin-"); binErr != nil {
			binErr = fmt.Errorf("temp dir for the binary: %w", binErr)
			return
		}
		binPath = filepath.Join(binDir, "kasync")
		binErr = testutil.BuildKasync(binPath)
	})
	require.NoError(t, binErr)
	return binPath
}
