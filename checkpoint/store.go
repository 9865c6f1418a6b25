package checkpoint

import "context"

// Key names one checkpointed partition.
type Key struct {
	Group     string
	Topic     string
	Partition int32
}

// State is the durable progress of one partition: every offset below Watermark is done,
// and so is every offset in Done (all of which are ≥ Watermark).
type State struct {
	Watermark int64
	Done      RangeSet
}

// Store keeps States durably. Save is cheap and buffered; a State is durable only once a
// Flush that started after its Save has returned nil.
type Store interface {
	// Load returns the last durable (or saved) state of k; ok is false if none exists.
	Load(ctx context.Context, k Key) (st State, ok bool, err error)
	// Save records st as the newest state of k, to be written by the next flush.
	// The store takes ownership of st.Done.
	Save(k Key, st State)
	// Flush writes every saved state and syncs it to disk (one sync for all of them).
	Flush(ctx context.Context) error
	// Close flushes and releases the store.
	Close() error
}

// UrgentFlusher is a Store that keeps syncs apart (PebbleOptions.MinSyncInterval) and
// can be told not to wait. A tailer uses it when what it has completed and not yet
// made durable reaches its bound (tailer.Config.CommitCount): it stops reading then,
// so the bound must cost an fsync, not a wait for the next sync slot. A Store without
// it is flushed with Flush.
type UrgentFlusher interface {
	// FlushNow is Flush without waiting for the next sync slot.
	FlushNow(ctx context.Context) error
	// Hurry makes a Flush waiting for its sync slot now go ahead at once; it does not
	// block.
	Hurry()
}
