package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// ErrClosed is returned by calls on a broker after Close.
var ErrClosed = errors.New("broker: closed")

// lockFileName is the lock file Start takes inside DataDir. kfake itself does
// not lock its directory, and two clusters writing one directory would
// corrupt it.
const lockFileName = "kasync-broker.lock"

// Broker is a running development broker. Its methods are safe for
// concurrent use.
type Broker struct {
	opts  Options
	addrs []string

	// mu guards closed and the use of cluster: kfake serves admin calls on
	// its run loop, which is gone after Close, so a call racing Close would
	// block forever without it.
	mu      sync.RWMutex
	closed  bool
	cluster *kfake.Cluster
	lock    io.Closer
}

// Start validates opts, starts the broker and creates opts.Topics. It
// returns once the broker accepts connections.
func Start(opts Options) (*Broker, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	port, _ := listenPort(opts.Listen) // validated above

	var lock io.Closer
	if opts.DataDir != "" {
		var err error
		if lock, err = lockDataDir(opts.DataDir); err != nil {
			return nil, err
		}
	}

	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ClusterID("kasync-dev"),
		kfake.DefaultNumPartitions(int(opts.Partitions)),
		kfake.WithLogger(slogAdapter{opts.Logger}),
	}
	if opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	if opts.SyncWrites {
		kopts = append(kopts, kfake.SyncWrites())
	}
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		if lock != nil {
			_ = lock.Close()
		}
		if opErr := (*net.OpError)(nil); errors.As(err, &opErr) {
			return nil, fmt.Errorf("broker: listen on %s: %w (is another broker or Kafka already listening there? choose another port, or port 0 for a free one)", opts.Listen, err)
		}
		if opts.DataDir != "" {
			return nil, fmt.Errorf("broker: start with data dir %q: %w", opts.DataDir, err)
		}
		return nil, fmt.Errorf("broker: start: %w", err)
	}

	b := &Broker{opts: opts, cluster: cluster, lock: lock, addrs: cluster.ListenAddrs()}
	for _, name := range slices.Sorted(maps.Keys(opts.Topics)) {
		if err := b.CreateTopic(name, opts.Topics[name], nil); err != nil {
			return nil, errors.Join(err, b.Close())
		}
	}
	opts.Logger.Debug("development broker started", "addrs", b.addrs, "data_dir", opts.DataDir)
	return b, nil
}

// Addrs returns the addresses clients should use as seed brokers.
func (b *Broker) Addrs() []string { return slices.Clone(b.addrs) }

// CreateTopic creates a topic. partitions <= 0 means Options.Partitions;
// configs are Kafka topic configs (nil for none). A topic that already
// exists is not an error and is left unchanged.
func (b *Broker) CreateTopic(name string, partitions int32, configs map[string]string) error {
	if err := validateTopicName(name); err != nil {
		return fmt.Errorf("broker: create topic: %w", err)
	}
	if partitions <= 0 {
		partitions = b.opts.Partitions
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	err := b.cluster.CreateTopic(name, partitions, configs)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("broker: create topic %q: %w", name, err)
	}
	return nil
}

// Close stops the broker. With a DataDir, it writes the broker's state to
// disk first, so that Start on the same directory finds it again. Calls
// after the first do nothing and return nil.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.cluster.Close()
	if b.lock != nil {
		if err := b.lock.Close(); err != nil {
			return fmt.Errorf("broker: release data dir lock: %w", err)
		}
	}
	return nil
}

// Banner is the text to show when the broker starts. It says plainly what
// kind of broker this is and what it keeps.
func (b *Broker) Banner() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "kasync development broker listening on %s\n", strings.Join(b.addrs, ","))
	sb.WriteString("  This is a development broker (franz-go kfake): a single process keeping one copy\n")
	sb.WriteString("  of every record. There is no replication: a lost disk or machine loses the data.\n")
	if b.opts.DataDir == "" {
		sb.WriteString("  Data is kept in memory only: every topic, record and committed offset is gone\n")
		sb.WriteString("  when it stops. Give it a data dir to keep them across restarts.\n")
	} else {
		fmt.Fprintf(&sb, "  Data is kept in %s: topics, records and committed offsets survive a restart.\n", b.opts.DataDir)
		if b.opts.SyncWrites {
			sb.WriteString("  Sync writes are on: every produced batch is fsynced before it is acknowledged.\n")
		} else {
			sb.WriteString("  Sync writes are off: a machine crash can lose the newest records.\n")
		}
	}
	sb.WriteString("  Topics are not created on produce: create a topic before producing to it.\n")
	sb.WriteString("  Not for production: there, point kafka.brokers at Kafka or Redpanda.\n")
	return sb.String()
}

func lockDataDir(dir string) (io.Closer, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("broker: data dir %q: %w", dir, err)
	}
	path := filepath.Join(dir, lockFileName)
	lock, err := vfs.Default.Lock(path)
	if err != nil {
		return nil, fmt.Errorf("broker: data dir %q is in use by another broker (lock %s: %w); stop it or choose another data dir", dir, path, err)
	}
	return lock, nil
}

// slogAdapter routes kfake's logs to slog. kfake logs group and connection
// events at info; for a development broker those are debug detail.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	sl := slog.LevelDebug
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, sl) {
		return // skip formatting what nobody will read
	}
	a.l.Log(ctx, sl, fmt.Sprintf(format, args...), "component", "broker")
}
