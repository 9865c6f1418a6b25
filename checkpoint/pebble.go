package checkpoint

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kasync/kasync/internal/logrepeat"
)

// ErrClosed is returned by every PebbleStore operation after Close.
var ErrClosed = errors.New("checkpoint: store is closed")

// Defaults of PebbleOptions. A checkpoint store holds one small value per partition, so it
// needs a fraction of what Pebble's defaults (64 MiB memtable, 8 MiB cache) reserve.
const (
	DefaultMemTableSize = 4 << 20
	DefaultCacheSize    = 4 << 20
	DefaultMaxOpenFiles = 64
)

// PebbleOptions configures OpenPebble. Call EnsureDefaults then Validate (OpenPebble does both).
type PebbleOptions struct {
	// Dir is the directory of the Pebble database; it is created with mode 0700.
	// Required.
	Dir string
	// FS is the filesystem; nil means vfs.Default. Tests use vfs.NewMem or
	// vfs.NewCrashableMem.
	FS vfs.FS
	// Logger receives the store's logs and Pebble's (Pebble's info lines at Debug).
	// nil means slog.Default().
	Logger *slog.Logger
	// MemTableSize is Pebble's memtable size in bytes; 0 means DefaultMemTableSize.
	MemTableSize uint64
	// CacheSize is Pebble's block cache size in bytes; 0 means DefaultCacheSize.
	CacheSize int64
	// MinSyncInterval keeps syncs at least this far apart, however many callers flush:
	// a Flush that comes sooner waits for the next slot and shares its one fsync with
	// every state saved until then. 0 means no limit. A node sets it to its checkpoint
	// interval, so it syncs at most once per interval whatever its number of tailers.
	MinSyncInterval time.Duration
}

// EnsureDefaults fills every unset field with its default.
func (o *PebbleOptions) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
}

// Validate reports every problem of o at once.
func (o *PebbleOptions) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("checkpoint: PebbleOptions.Dir is empty: set it to a directory for the checkpoint database (e.g. <node.data_dir>/checkpoints)"))
	}
	if o.MemTableSize > 0 && o.MemTableSize < 64<<10 {
		errs = append(errs, fmt.Errorf("checkpoint: PebbleOptions.MemTableSize %d is below 64 KiB: use 0 for the default (%d)", o.MemTableSize, DefaultMemTableSize))
	}
	if o.MinSyncInterval < 0 {
		errs = append(errs, fmt.Errorf("checkpoint: PebbleOptions.MinSyncInterval %s is negative: use 0 for no limit", o.MinSyncInterval))
	}
	if o.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("checkpoint: PebbleOptions.CacheSize %d is negative: use 0 for the default (%d)", o.CacheSize, DefaultCacheSize))
	}
	return errors.Join(errs...)
}

// PebbleStats counts the work of a PebbleStore since it was opened.
type PebbleStats struct {
	// Flushes is the number of batches committed and synced (one fsync each).
	Flushes uint64
	// StatesWritten is the number of states those batches held.
	StatesWritten uint64
}

// PebbleStore is a Store on a Pebble database. Save only records the state in memory;
// Flush writes every saved state in one batch and one fsync. It is safe for concurrent use.
type PebbleStore struct {
	opts PebbleOptions
	log  *slog.Logger

	// flushSem (capacity 1) serialises flushes; Close holds it while it finishes.
	flushSem chan struct{}
	// hurry (capacity 1) cuts a flush's wait for its sync slot short (Hurry).
	hurry chan struct{}

	mu         sync.Mutex
	dirty      map[Key]dirtyState // saved, not yet durable
	saveSeq    uint64             // sequence number of the latest Save
	durableSeq uint64             // every Save up to this one is durable
	closed     bool

	// dbMu guards db. Reads and commits hold it shared; replacing db holds it exclusively.
	dbMu sync.RWMutex
	// db is nil after a failed commit: Pebble cannot be trusted after a failed WAL sync,
	// so the store closes it and reopens it (replaying what reached the disk) on next use.
	db       *pebble.DB
	dbClosed bool // set by Close: never reopen

	flushes       atomic.Uint64
	statesWritten atomic.Uint64
	flushErr      atomic.Pointer[error] // the latest flush's error; nil after a success
	// repeats keeps a failing disk to one flush error line every 30s, with a count:
	// every tailer flushes every commit interval and logs its own failure too.
	repeats logrepeat.Limiter

	lastSync time.Time // when the last batch was synced; guarded by flushSem
}

type dirtyState struct {
	st  State
	seq uint64
}

var _ Store = (*PebbleStore)(nil)

// OpenPebble opens (creating if needed) the Pebble database in opts.Dir.
func OpenPebble(opts PebbleOptions) (*PebbleStore, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &PebbleStore{
		opts:     opts,
		log:      opts.Logger.With("component", "checkpoint", "dir", opts.Dir),
		flushSem: make(chan struct{}, 1),
		hurry:    make(chan struct{}, 1),
		dirty:    make(map[Key]dirtyState),
	}
	db, err := s.openDB()
	if err != nil {
		return nil, err
	}
	s.db = db
	return s, nil
}

func (s *PebbleStore) openDB() (*pebble.DB, error) {
	// Pebble would create the directory world-readable; checkpoints are nobody else's business.
	if err := mkdirAllDurable(s.opts.FS, s.opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: create dir %q: %w", s.opts.Dir, err)
	}
	popts := &pebble.Options{
		FS:                 s.opts.FS,
		Logger:             pebbleLogger{s.log.With("component", "pebble")},
		MemTableSize:       s.opts.MemTableSize,
		CacheSize:          s.opts.CacheSize,
		MaxOpenFiles:       DefaultMaxOpenFiles,
		FormatMajorVersion: pebble.FormatNewest,
	}
	db, err := openRecovering(s.opts.Dir, popts)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: open pebble in %q: %w", s.opts.Dir, err)
	}
	return db, nil
}

// Save records st as the newest state of k. The store owns st.Done from now on.
// A Save after Close is dropped and logged.
func (s *PebbleStore) Save(k Key, st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.log.Error("checkpoint: save after close dropped", "group", k.Group, "topic", k.Topic, "partition", k.Partition, "watermark", st.Watermark)
		return
	}
	s.saveSeq++
	s.dirty[k] = dirtyState{st: st, seq: s.saveSeq}
}

// Load returns the newest saved state of k: the one not yet flushed if there is one,
// else the durable one. The returned Done is the caller's to modify.
func (s *PebbleStore) Load(ctx context.Context, k Key) (State, bool, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return State{}, false, ErrClosed
	}
	if d, ok := s.dirty[k]; ok {
		s.mu.Unlock()
		return d.st.Clone(), true, nil
	}
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return State{}, false, fmt.Errorf("checkpoint: load %s: %w", keyString(k), err)
	}
	var (
		st State
		ok bool
	)
	err := s.withDB(func(db *pebble.DB) error {
		v, closer, err := db.Get(EncodeKey(k))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer closer.Close()
		st, err = DecodeState(v)
		ok = err == nil
		return err
	})
	if err != nil {
		return State{}, false, fmt.Errorf("checkpoint: load %s: %w", keyString(k), err)
	}
	return st, ok, nil
}

// Flush makes every state saved before the call durable, in one batch and one fsync.
// Concurrent calls coalesce: a call waits for the flush in progress and returns without
// writing if that flush already covered its saves. If the commit fails, the states stay
// saved, the error is returned, and a later Flush writes them again.
func (s *PebbleStore) Flush(ctx context.Context) error { return s.flush(ctx, false) }

// FlushNow is Flush without waiting for the next sync slot (PebbleOptions.
// MinSyncInterval): for a caller that must bound what is not yet durable, such as a
// tailer whose completions since its last checkpoint reached CommitCount. It
// implements UrgentFlusher.
func (s *PebbleStore) FlushNow(ctx context.Context) error { return s.flush(ctx, true) }

// Hurry makes a Flush that waits for its sync slot go ahead now (UrgentFlusher). A
// Hurry with no Flush waiting lets the next one that waits go ahead.
func (s *PebbleStore) Hurry() {
	select {
	case s.hurry <- struct{}{}:
	default:
	}
}

func (s *PebbleStore) flush(ctx context.Context, now bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	target := s.saveSeq
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("checkpoint: flush: %w", err)
	}
	select {
	case s.flushSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("checkpoint: flush: %w", ctx.Err())
	}
	defer func() { <-s.flushSem }()
	if !now {
		if err := s.waitSyncSlot(ctx, target); err != nil {
			return err
		}
	}
	return s.flushLocked(target)
}

// waitSyncSlot waits, holding flushSem, until MinSyncInterval has passed since the last
// sync, unless the saves up to target are durable already. Saves made while it waits
// are written by the flush that follows, so concurrent callers share one fsync.
func (s *PebbleStore) waitSyncSlot(ctx context.Context, target uint64) error {
	s.mu.Lock()
	covered := s.durableSeq >= target
	s.mu.Unlock()
	wait := time.Until(s.lastSync.Add(s.opts.MinSyncInterval))
	if covered || s.opts.MinSyncInterval <= 0 || wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.hurry:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("checkpoint: flush: waiting for the next sync slot: %w", ctx.Err())
	}
}

// flushLocked makes every Save up to target durable. The caller holds flushSem.
func (s *PebbleStore) flushLocked(target uint64) error {
	s.mu.Lock()
	if s.durableSeq >= target {
		// A flush that snapshotted after our saves has already synced them.
		s.mu.Unlock()
		return nil
	}
	upto := s.saveSeq
	type pending struct {
		k Key
		dirtyState
	}
	batch := make([]pending, 0, len(s.dirty))
	for k, d := range s.dirty {
		batch = append(batch, pending{k, d})
	}
	s.mu.Unlock()

	if len(batch) > 0 {
		// Encode outside the lock: Save replaces map entries, it never mutates a saved State.
		err := s.withDB(func(db *pebble.DB) error {
			b := db.NewBatch()
			defer b.Close()
			for _, p := range batch {
				if err := b.Set(EncodeKey(p.k), EncodeState(p.st), nil); err != nil {
					return err
				}
			}
			return commitRecovering(b)
		})
		if err != nil {
			s.flushErr.Store(&err)
			s.repeats.Log(s.log, slog.LevelError, "flush", "checkpoint: flush failed; states stay saved and the next flush retries them", "states", len(batch), "err", err)
			return fmt.Errorf("checkpoint: flush %d states: %w", len(batch), err)
		}
		s.flushErr.Store(nil)
		s.flushes.Add(1)
		s.statesWritten.Add(uint64(len(batch)))
		s.lastSync = time.Now()
	}

	s.mu.Lock()
	for _, p := range batch {
		// A key saved again during the commit keeps its newer, still dirty, value.
		if cur, ok := s.dirty[p.k]; ok && cur.seq == p.seq {
			delete(s.dirty, p.k)
		}
	}
	s.durableSeq = max(s.durableSeq, upto)
	s.mu.Unlock()
	return nil
}

// withDB runs fn on the open database, reopening it first if a failed commit closed it.
// If fn hits a Pebble fatal error, the database is closed so the next call starts from
// what reached the disk.
func (s *PebbleStore) withDB(fn func(db *pebble.DB) error) error {
	for {
		s.dbMu.RLock()
		if db := s.db; db != nil {
			err := callRecovering(fn, db)
			s.dbMu.RUnlock()
			if err != nil && isFatal(err) {
				s.discardDB(db)
			}
			return err
		}
		s.dbMu.RUnlock()
		if err := s.reopen(); err != nil {
			return err
		}
	}
}

// reopen opens the database if it is not open.
func (s *PebbleStore) reopen() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db != nil {
		return nil
	}
	if s.dbClosed {
		return ErrClosed
	}
	db, err := s.openDB()
	if err != nil {
		return err
	}
	s.log.Info("checkpoint: pebble reopened after a failed commit")
	s.db = db
	return nil
}

// discardDB closes db if it is still the current database.
func (s *PebbleStore) discardDB(db *pebble.DB) {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db != db {
		return
	}
	s.db = nil
	if err := closeRecovering(db); err != nil {
		s.log.Warn("checkpoint: close pebble after a failed commit", "err", err)
	}
}

// Ready reports whether the store is making checkpoints durable: it is not closed and
// the latest flush, if any, succeeded (a failed one also closes the database until the
// next flush reopens it). It changes nothing; a node's /readyz asks it.
func (s *PebbleStore) Ready() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if p := s.flushErr.Load(); p != nil {
		return fmt.Errorf("checkpoint: the latest flush failed (the next one retries): %w", *p)
	}
	return nil
}

// Stats returns counters of the work done so far.
func (s *PebbleStore) Stats() PebbleStats {
	return PebbleStats{Flushes: s.flushes.Load(), StatesWritten: s.statesWritten.Load()}
}

// Close flushes every saved state, then closes the database. Later calls return ErrClosed.
func (s *PebbleStore) Close() error {
	s.flushSem <- struct{}{}
	defer func() { <-s.flushSem }()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	target := s.saveSeq
	s.mu.Unlock()

	flushErr := s.flushLocked(target)
	s.repeats.Flush()
	if flushErr != nil {
		s.mu.Lock()
		lost := len(s.dirty)
		s.mu.Unlock()
		flushErr = fmt.Errorf("checkpoint: close: %d saved states are not durable: %w", lost, flushErr)
	}
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	s.dbClosed = true
	var closeErr error
	if s.db != nil {
		if err := closeRecovering(s.db); err != nil {
			closeErr = fmt.Errorf("checkpoint: close pebble: %w", err)
		}
		s.db = nil
	}
	return errors.Join(flushErr, closeErr)
}

// abandon closes the database without flushing, as a crash would leave it. Tests only.
func (s *PebbleStore) abandon() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	s.dbClosed = true
	if s.db != nil {
		_ = closeRecovering(s.db)
		s.db = nil
	}
}

// mkdirAllDurable creates dir and its missing parents, then syncs the parent of each
// directory it created. Pebble syncs its own directory but not the ones above it: without
// this, a power cut after the first flush could lose the directory, and the checkpoints
// with it.
func mkdirAllDurable(fs vfs.FS, dir string, perm os.FileMode) error {
	var created []string
	for d := dir; ; {
		if _, err := fs.Stat(d); err == nil {
			break
		} else if !errors.Is(err, iofs.ErrNotExist) {
			return err
		}
		created = append(created, d)
		parent := fs.PathDir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if len(created) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range created {
		parent := fs.PathDir(d)
		if parent == d {
			continue
		}
		f, err := fs.OpenDir(parent)
		if err != nil {
			return fmt.Errorf("open parent dir %q to sync it: %w", parent, err)
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sync parent dir %q: %w", parent, err)
		}
	}
	return nil
}

func keyString(k Key) string {
	return fmt.Sprintf("group %q topic %q partition %d", k.Group, k.Topic, k.Partition)
}

// pebbleLogger routes Pebble's logs to slog. Pebble logs every flush and compaction at
// info, so those go to Debug.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }

// Fatalf is called by Pebble when it cannot go on (a failed WAL sync, for one). Pebble's
// default exits the process; if Fatalf returned, DB.Apply would go on and report success
// for a batch that was not synced. So it panics with a fatalError, which the store
// recovers around its own calls into Pebble and turns into an error.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "fatal", true)
	panic(&fatalError{msg: msg})
}

// fatalError is a Pebble fatal condition. After one the DB must not be used again.
type fatalError struct{ msg string }

func (e *fatalError) Error() string { return e.msg }

func isFatal(err error) bool {
	var fe *fatalError
	return errors.As(err, &fe)
}

func recoverFatal(err *error) {
	if r := recover(); r != nil {
		fe, ok := r.(*fatalError)
		if !ok {
			panic(r)
		}
		*err = fe
	}
}

func commitRecovering(b *pebble.Batch) (err error) {
	defer recoverFatal(&err)
	if err := b.Commit(pebble.Sync); err != nil {
		// A commit error that did not go through Fatalf still leaves the WAL in doubt.
		return &fatalError{msg: fmt.Sprintf("pebble: commit: %v", err)}
	}
	return nil
}

func callRecovering(fn func(*pebble.DB) error, db *pebble.DB) (err error) {
	defer recoverFatal(&err)
	return fn(db)
}

func closeRecovering(db *pebble.DB) (err error) {
	defer recoverFatal(&err)
	return db.Close()
}

func openRecovering(dir string, opts *pebble.Options) (db *pebble.DB, err error) {
	defer recoverFatal(&err)
	return pebble.Open(dir, opts)
}
