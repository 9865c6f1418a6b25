package tailer

import (
	"strings"
	"testing"
)

func TestConfigFetchMaxBytes(t *testing.T) {
	c := Config{Name: "t", Topic: "x"}.withDefaults()
	if c.FetchMaxBytes != DefaultFetchMaxBytes {
		t.Fatalf("default FetchMaxBytes %d, want %d", c.FetchMaxBytes, DefaultFetchMaxBytes)
	}
	c = Config{Name: "t", Topic: "x", FetchMaxBytes: 100}.withDefaults()
	err := c.validate()
	if err == nil || !strings.Contains(err.Error(), "FetchMaxBytes") || !strings.Contains(err.Error(), "below 1024") {
		t.Fatalf("FetchMaxBytes 100: %v", err)
	}
}
