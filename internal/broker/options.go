package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
)

// DefaultListen is where the development broker listens unless told otherwise.
const DefaultListen = "127.0.0.1:9092"

// DefaultPartitions is the partition count of topics created without one.
const DefaultPartitions int32 = 3

// maxTopicNameLen is Kafka's limit on topic name length.
const maxTopicNameLen = 249

// Options configure a development broker. The zero value is valid: an
// in-memory broker on DefaultListen.
type Options struct {
	// Listen is HOST:PORT. HOST must be 127.0.0.1, localhost or empty,
	// because kfake binds 127.0.0.1 only. PORT 0 picks a free port; read
	// the result from Broker.Addrs. Default DefaultListen.
	Listen string
	// DataDir keeps topics, records and group offsets on disk so that they
	// survive a restart. Empty keeps everything in memory.
	DataDir string
	// SyncWrites fsyncs every produced batch before acknowledging it. Only
	// meaningful with DataDir.
	SyncWrites bool
	// Partitions is the partition count of topics created without one,
	// including those created by clients with -1 partitions. Default
	// DefaultPartitions.
	Partitions int32
	// Topics are created at start (name to partition count; 0 means
	// Partitions). Topics that already exist, for example from DataDir,
	// are left as they are.
	Topics map[string]int32
	// Logger receives kfake's logs at a quiet level. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns a copy of o with every unset field at its default.
func (o Options) WithDefaults() Options {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Partitions == 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports every problem in o at once. Call it on the result of
// WithDefaults.
func (o Options) Validate() error {
	var errs []error
	if _, err := listenPort(o.Listen); err != nil {
		errs = append(errs, err)
	}
	if o.Partitions < 0 {
		errs = append(errs, fmt.Errorf("broker: partitions %d is negative; use a count of 1 or more, or 0 for the default %d", o.Partitions, DefaultPartitions))
	}
	for name, p := range o.Topics {
		if err := validateTopicName(name); err != nil {
			errs = append(errs, fmt.Errorf("broker: topics: %w", err))
		}
		if p < 0 {
			errs = append(errs, fmt.Errorf("broker: topics: %q has %d partitions; use 1 or more, or 0 for the default", name, p))
		}
	}
	if o.DataDir != "" {
		if fi, err := os.Stat(o.DataDir); err == nil && !fi.IsDir() {
			errs = append(errs, fmt.Errorf("broker: data dir %q is a file; name a directory (it is created if missing)", o.DataDir))
		}
	}
	if o.SyncWrites && o.DataDir == "" {
		errs = append(errs, errors.New("broker: sync writes needs a data dir; set DataDir, or turn sync writes off for an in-memory broker"))
	}
	return errors.Join(errs...)
}

// listenPort checks that listen is a loopback HOST:PORT kfake can serve and
// returns the port.
func listenPort(listen string) (int, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return 0, fmt.Errorf("broker: listen address %q: %w; want HOST:PORT such as %s, or 127.0.0.1:0 for a free port", listen, err, DefaultListen)
	}
	switch host {
	case "", "127.0.0.1", "localhost":
	default:
		return 0, fmt.Errorf("broker: listen address %q: host %q is not allowed: the development broker binds 127.0.0.1 only (it is not meant to be reached from other machines); use 127.0.0.1:%s, or run Kafka or Redpanda and point kafka.brokers at it", listen, host, portStr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("broker: listen address %q: port %q is not a number from 0 to 65535 (0 picks a free port)", listen, portStr)
	}
	return port, nil
}

// validateTopicName applies Kafka's rules for topic names, so a bad name
// fails here with a clear message instead of as a protocol error code.
func validateTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is reserved", name)
	case len(name) > maxTopicNameLen:
		return fmt.Errorf("topic name %q is %d characters; Kafka allows at most %d", name, len(name), maxTopicNameLen)
	}
	for _, r := range name {
		ok := r == '.' || r == '_' || r == '-' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("topic name %q contains %q; use only letters, digits, '.', '_' and '-'", name, r)
		}
	}
	return nil
}
