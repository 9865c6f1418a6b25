package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildKasync builds ./cmd/kasync of the module the calling test runs in to out,
// without the race detector. `go test` puts its own GOROOT/bin first on PATH, so "go"
// is the toolchain running the test.
func BuildKasync(out string) error {
	root, err := ModuleRoot()
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

// ModuleRoot is the nearest directory at or above the working directory (the package's
// own, under go test) that holds go.mod.
func ModuleRoot() (string, error) {
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
