package crashtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
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
		binErr = buildKasync(binPath)
	})
	require.NoError(t, binErr)
	return binPath
}

// buildKasync builds ./cmd/kasync of the module this package is in to out. `go test`
// puts its own GOROOT/bin first on PATH, so "go" is the toolchain running the test.
func buildKasync(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", out, "./cmd/kasync")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/kasync in %s: %w\n%s", root, err, b)
	}
	return nil
}

// moduleRoot is the nearest directory at or above the working directory (the package's
// own, under go test) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("looking for go.mod: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory; run the test with go test from inside the module")
		}
		dir = parent
	}
}
