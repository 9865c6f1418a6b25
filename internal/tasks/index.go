package tasks

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/logrepeat"
)

// Index is a node's copy of the task status topic in Pebble: the merged state of every
// task (Merge), and per partition the last offset applied, so that a restarted node
// goes on from there. It is rebuilt from the topic when lost: delete its directory.
// Apply is for one goroutine (Follow); Get is safe with it at any time.
type Index struct {
	db  *pebble.DB
	log *slog.Logger
	// repeats keeps records that are not task statuses, which can come one per
	// record, to one line every 30s with a count.
	repeats logrepeat.Limiter
}

// Keys: statusPrefix + task id → Status JSON; offsetPrefix + partition (4 bytes, big
// endian) → the last offset applied (8 bytes).
const (
	statusPrefix = "s/"
	offsetPrefix = "o/"
)

// OpenIndex opens (creating) the index in dir.
func OpenIndex(dir string, log *slog.Logger) (*Index, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tasks: create index dir %q: %w", dir, err)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log.With("component", "pebble", "db", "tasks")},
		FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		return nil, fmt.Errorf("tasks: open index in %q: %w", dir, err)
	}
	return &Index{db: db, log: log}, nil
}

// Close closes the index.
func (x *Index) Close() error {
	if err := x.db.Close(); err != nil {
		return fmt.Errorf("tasks: close index: %w", err)
	}
	return nil
}

// ErrNotFound is returned by Get for a task the index does not know.
var ErrNotFound = errors.New("tasks: no such task")

// Get returns the state of task id.
func (x *Index) Get(id string) (Status, error) {
	v, closer, err := x.db.Get([]byte(statusPrefix + id))
	if errors.Is(err, pebble.ErrNotFound) {
		return Status{}, ErrNotFound
	}
	if err != nil {
		return Status{}, fmt.Errorf("tasks: index get %q: %w", id, err)
	}
	defer closer.Close()
	var s Status
	if err := json.Unmarshal(v, &s); err != nil {
		return Status{}, fmt.Errorf("tasks: index value of %q: %w", id, err)
	}
	return s, nil
}

// Apply merges the transitions recs (records of the status topic) into the index, with
// the offsets they reach, in one batch. A record that is not a Status is skipped and
// logged; a tombstone (no value) deletes its task.
func (x *Index) Apply(recs []*kgo.Record) error {
	b := x.db.NewIndexedBatch()
	defer b.Close()
	for _, r := range recs {
		key := append([]byte(statusPrefix), r.Key...)
		if err := x.apply(b, key, r); err != nil {
			return err
		}
		var off [8]byte
		binary.BigEndian.PutUint64(off[:], uint64(r.Offset))
		if err := b.Set(offsetKey(r.Partition), off[:], nil); err != nil {
			return fmt.Errorf("tasks: index offset: %w", err)
		}
	}
	// Not synced: a crash loses the tail of the batches together with their offsets,
	// and the node reads those records again.
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("tasks: index commit: %w", err)
	}
	return nil
}

func (x *Index) apply(b *pebble.Batch, key []byte, r *kgo.Record) error {
	if r.Value == nil {
		if err := b.Delete(key, nil); err != nil {
			return fmt.Errorf("tasks: index delete: %w", err)
		}
		return nil
	}
	var next Status
	if err := json.Unmarshal(r.Value, &next); err != nil || next.ID != string(r.Key) || next.State.rank() < 0 {
		x.repeats.Log(x.log, slog.LevelWarn, "not a status", "task status record skipped: not a task status", "partition", r.Partition, "offset", r.Offset, "err", err)
		return nil
	}
	var cur *Status
	v, closer, err := b.Get(key)
	switch {
	case err == nil:
		var s Status
		if jerr := json.Unmarshal(v, &s); jerr == nil {
			cur = &s
		}
		_ = closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("tasks: index read %q: %w", r.Key, err)
	}
	merged, err := json.Marshal(Merge(cur, next))
	if err != nil {
		return fmt.Errorf("tasks: index encode: %w", err)
	}
	if err := b.Set(key, merged, nil); err != nil {
		return fmt.Errorf("tasks: index write: %w", err)
	}
	return nil
}

func offsetKey(p int32) []byte {
	k := append([]byte(offsetPrefix), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(k[len(offsetPrefix):], uint32(p))
	return k
}

// next is where partition p resumes: after the last offset applied, else the start.
func (x *Index) next(p int32) (kgo.Offset, error) {
	v, closer, err := x.db.Get(offsetKey(p))
	if errors.Is(err, pebble.ErrNotFound) {
		return kgo.NewOffset().AtStart(), nil
	}
	if err != nil {
		return kgo.Offset{}, fmt.Errorf("tasks: index offset of partition %d: %w", p, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return kgo.NewOffset().AtStart(), nil
	}
	return kgo.NewOffset().At(int64(binary.BigEndian.Uint64(v)) + 1), nil
}

// Follow reads topic into the index until ctx is done, from where the index left off.
// opts connect to the cluster. It reads the partitions the topic has when it starts.
func (x *Index) Follow(ctx context.Context, topic string, opts []kgo.Opt) error {
	meta, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("tasks: follow %s: %w", topic, err)
	}
	details, err := kadm.NewClient(meta).ListTopics(ctx, topic)
	meta.Close()
	if err == nil {
		err = details.Error()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("tasks: follow %s: list partitions: %w", topic, err)
	}
	offsets := map[int32]kgo.Offset{}
	for p := range details[topic].Partitions {
		if offsets[p], err = x.next(p); err != nil {
			return err
		}
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))...)
	if err != nil {
		return fmt.Errorf("tasks: follow %s: %w", topic, err)
	}
	defer cl.Close()
	var lastWarn time.Time
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(_ string, p int32, err error) {
			if now := time.Now(); now.Sub(lastWarn) >= 30*time.Second {
				lastWarn = now
				x.log.Warn("task status topic: fetch error (repeats are not logged for 30s)", "topic", topic, "partition", p, "err", err)
			}
		})
		if recs := fetches.Records(); len(recs) > 0 {
			if err := x.Apply(recs); err != nil {
				return err
			}
		}
	}
}

// pebbleLogger sends Pebble's logs to slog.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
