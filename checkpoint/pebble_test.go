package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
)

const testDir = "/data/checkpoints"

var discard = slog.New(slog.DiscardHandler)

func openTestStore(t testing.TB, fs vfs.FS) *PebbleStore {
	t.Helper()
	s, err := OpenPebble(PebbleOptions{Dir: testDir, FS: fs, Logger: discard})
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func key(p int32) Key { return Key{Group: "kasync.orders", Topic: "orders", Partition: p} }

func requireLoad(t testing.TB, s *PebbleStore, k Key, want State) {
	t.Helper()
	got, ok, err := s.Load(context.Background(), k)
	require.NoError(t, err)
	require.True(t, ok, "no state for %+v", k)
	requireSameState(t, want, got)
}

func numDirty(s *PebbleStore) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dirty)
}

// syncGate is an errorfs injector on WAL syncs: it can fail them or hold them until released.
type syncGate struct {
	fail    atomic.Bool
	hold    atomic.Bool
	reached chan struct{} // a held sync signals here
	release chan struct{} // and waits for this
}

func newSyncGate() *syncGate {
	return &syncGate{reached: make(chan struct{}, 1), release: make(chan struct{})}
}

var errDiskGone = errors.New("injected: disk gone")

func (g *syncGate) String() string { return "syncGate" }

func (g *syncGate) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
	default:
		return nil
	}
	if !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	if g.hold.CompareAndSwap(true, false) {
		g.reached <- struct{}{}
		<-g.release
	}
	if g.fail.Load() {
		return errDiskGone
	}
	return nil
}

// synced opens what survives a power cut right now: only synced data.
func synced(t testing.TB, fs *vfs.MemFS) *PebbleStore {
	t.Helper()
	return openTestStore(t, fs.CrashClone(vfs.CrashCloneCfg{}))
}

func TestPebbleRoundTrip(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, vfs.NewMem())
	ctx := context.Background()

	_, ok, err := s.Load(ctx, key(0))
	require.NoError(t, err)
	require.False(t, ok)

	want := stateOf(100, Range{102, 105})
	s.Save(key(0), want.Clone())
	requireLoad(t, s, key(0), want) // saved, not flushed
	require.NoError(t, s.Flush(ctx))
	require.Zero(t, numDirty(s))
	requireLoad(t, s, key(0), want) // from Pebble
	require.Equal(t, PebbleStats{Flushes: 1, StatesWritten: 1}, s.Stats())

	// Nothing dirty: no commit, no fsync.
	require.NoError(t, s.Flush(ctx))
	require.Equal(t, uint64(1), s.Stats().Flushes)

	// A loaded Done is the caller's: changing it does not change the store.
	got, _, err := s.Load(ctx, key(0))
	require.NoError(t, err)
	got.Done.Add(500)
	requireLoad(t, s, key(0), want)
}

func TestPebbleReopenKeepsData(t *testing.T) {
	t.Parallel()
	fs := vfs.NewMem()
	s, err := OpenPebble(PebbleOptions{Dir: testDir, FS: fs, Logger: discard})
	require.NoError(t, err)
	s.Save(key(1), stateOf(7, Range{9, 10}))
	s.Save(key(2), stateOf(3))
	require.NoError(t, s.Close()) // Close flushes

	s = openTestStore(t, fs)
	requireLoad(t, s, key(1), stateOf(7, Range{9, 10}))
	requireLoad(t, s, key(2), stateOf(3))
}

func TestPebbleManyKeysOneFlush(t *testing.T) {
	t.Parallel()
	fs := vfs.NewCrashableMem()
	s := openTestStore(t, fs)
	const n = 2000
	for i := range int32(n) {
		k := Key{Group: fmt.Sprintf("g%d", i%7), Topic: fmt.Sprintf("t%d", i%13), Partition: i}
		s.Save(k, stateOf(int64(i)*10, Range{int64(i)*10 + 2, int64(i)*10 + 4}))
	}
	require.NoError(t, s.Flush(context.Background()))
	require.Equal(t, PebbleStats{Flushes: 1, StatesWritten: n}, s.Stats())

	after := synced(t, fs)
	for i := range int32(n) {
		k := Key{Group: fmt.Sprintf("g%d", i%7), Topic: fmt.Sprintf("t%d", i%13), Partition: i}
		requireLoad(t, after, k, stateOf(int64(i)*10, Range{int64(i)*10 + 2, int64(i)*10 + 4}))
	}
}

func TestPebbleConcurrentSaveFlush(t *testing.T) {
	t.Parallel()
	fs := vfs.NewCrashableMem()
	s := openTestStore(t, fs)
	ctx := context.Background()
	const writers, rounds = 8, 60
	var (
		wg         sync.WaitGroup
		flushCalls atomic.Uint64
		durable    [writers]int64 // per key: the newest watermark a nil Flush vouched for
	)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			k := key(int32(w))
			for i := int64(1); i <= rounds; i++ {
				s.Save(k, stateOf(i*10, Range{i*10 + 3, i*10 + 4}))
				// One writer per key: Load sees exactly its latest Save.
				got, ok, err := s.Load(ctx, k)
				if err != nil || !ok || got.Watermark != i*10 {
					t.Errorf("writer %d: load after save %d: %v %v %d", w, i, err, ok, got.Watermark)
					return
				}
				if rng.IntN(3) == 0 {
					flushCalls.Add(1)
					if err := s.Flush(ctx); err != nil {
						t.Errorf("flush: %v", err)
						return
					}
					durable[w] = i * 10
				}
			}
		})
	}
	wg.Wait()
	require.LessOrEqual(t, s.Stats().Flushes, flushCalls.Load())

	// What each nil Flush vouched for survives a power cut.
	after := synced(t, fs)
	for w := range writers {
		got, ok, err := after.Load(ctx, key(int32(w)))
		require.NoError(t, err)
		if durable[w] == 0 {
			continue
		}
		require.True(t, ok)
		require.GreaterOrEqual(t, got.Watermark, durable[w], "writer %d", w)
		require.LessOrEqual(t, got.Watermark, int64(rounds*10))
	}
}

func TestPebbleSaveDuringFlushKeepsNewerValue(t *testing.T) {
	t.Parallel()
	mem := vfs.NewCrashableMem()
	gate := newSyncGate()
	s := openTestStore(t, errorfs.Wrap(mem, gate))
	ctx := context.Background()

	s.Save(key(0), stateOf(10))
	gate.hold.Store(true)
	done := make(chan error, 1)
	go func() { done <- s.Flush(ctx) }()
	<-gate.reached // the flush is in its fsync
	s.Save(key(0), stateOf(20))
	close(gate.release)
	require.NoError(t, <-done)

	// The flush wrote 10; 20 came later and is still waiting for the next flush.
	require.Equal(t, 1, numDirty(s))
	requireLoad(t, s, key(0), stateOf(20))
	requireLoad(t, synced(t, mem), key(0), stateOf(10))

	require.NoError(t, s.Flush(ctx))
	require.Zero(t, numDirty(s))
	requireLoad(t, synced(t, mem), key(0), stateOf(20))
	require.Equal(t, uint64(2), s.Stats().Flushes)
}

func TestPebbleFlushCoalesces(t *testing.T) {
	t.Parallel()
	mem := vfs.NewCrashableMem()
	gate := newSyncGate()
	s := openTestStore(t, errorfs.Wrap(mem, gate))
	ctx := context.Background()

	s.Save(key(0), stateOf(10))
	gate.hold.Store(true)
	first := make(chan error, 1)
	go func() { first <- s.Flush(ctx) }()
	<-gate.reached // the first flush holds the flush slot, in its fsync

	// A caller with nothing newer shares the first flush.
	sharing := make(chan error, 1)
	go func() { sharing <- s.Flush(ctx) }()

	// A flush cannot be waited for with a dead context.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, s.Flush(cancelled), context.Canceled)

	// Callers whose saves came after the first flush started need the next one; they
	// share it between them.
	s.Save(key(1), stateOf(5))
	later := make(chan error, 2)
	for range 2 {
		go func() { later <- s.Flush(ctx) }()
	}
	close(gate.release)
	require.NoError(t, <-first)
	require.NoError(t, <-sharing)
	require.NoError(t, <-later)
	require.NoError(t, <-later)
	require.Equal(t, PebbleStats{Flushes: 2, StatesWritten: 2}, s.Stats())

	after := synced(t, mem)
	requireLoad(t, after, key(0), stateOf(10))
	requireLoad(t, after, key(1), stateOf(5))
}

func TestPebbleReadyUntilClosed(t *testing.T) {
	t.Parallel()
	s, err := OpenPebble(PebbleOptions{Dir: testDir, FS: vfs.NewMem(), Logger: discard})
	require.NoError(t, err)
	require.NoError(t, s.Ready())
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Ready(), ErrClosed)
}

func TestPebbleFailedSyncIsNotDurableAndRetried(t *testing.T) {
	t.Parallel()
	mem := vfs.NewCrashableMem()
	gate := newSyncGate()
	s := openTestStore(t, errorfs.Wrap(mem, gate))
	ctx := context.Background()

	s.Save(key(0), stateOf(10))
	require.NoError(t, s.Flush(ctx))
	require.NoError(t, s.Ready())

	s.Save(key(0), stateOf(20))
	s.Save(key(1), stateOf(1))
	gate.fail.Store(true)
	err := s.Flush(ctx)
	require.ErrorContains(t, err, "checkpoint: flush 2 states")
	require.ErrorContains(t, err, errDiskGone.Error())
	require.ErrorContains(t, s.Ready(), "the latest flush failed", "not ready while flushes fail")
	require.ErrorContains(t, s.Ready(), errDiskGone.Error())
	require.Equal(t, PebbleStats{Flushes: 1, StatesWritten: 1}, s.Stats(), "a failed flush is not counted")
	require.Equal(t, 2, numDirty(s), "failed states stay saved")
	requireLoad(t, s, key(0), stateOf(20))

	// Nothing of the failed flush is durable.
	after := synced(t, mem)
	requireLoad(t, after, key(0), stateOf(10))
	_, ok, err := after.Load(ctx, key(1))
	require.NoError(t, err)
	require.False(t, ok)

	// Still failing: the store reopens Pebble (replaying what reached the disk), the
	// commit fails again, and the states stay saved.
	require.Error(t, s.Flush(ctx))
	require.Equal(t, 2, numDirty(s))
	requireLoad(t, s, key(1), stateOf(1))

	// The disk is back: the next flush writes them.
	gate.fail.Store(false)
	s.Save(key(2), stateOf(2))
	require.NoError(t, s.Flush(ctx))
	require.NoError(t, s.Ready(), "ready again once a flush succeeds")
	require.Zero(t, numDirty(s))
	require.Equal(t, PebbleStats{Flushes: 2, StatesWritten: 4}, s.Stats())
	requireLoad(t, s, key(0), stateOf(20))
	after = synced(t, mem)
	requireLoad(t, after, key(0), stateOf(20))
	requireLoad(t, after, key(1), stateOf(1))
	requireLoad(t, after, key(2), stateOf(2))
}

func TestPebbleCloseReportsStatesItCouldNotWrite(t *testing.T) {
	t.Parallel()
	gate := newSyncGate()
	s, err := OpenPebble(PebbleOptions{Dir: testDir, FS: errorfs.Wrap(vfs.NewMem(), gate), Logger: discard})
	require.NoError(t, err)
	s.Save(key(0), stateOf(10))
	gate.fail.Store(true)
	err = s.Close()
	require.ErrorContains(t, err, "1 saved states are not durable")
	require.ErrorIs(t, s.Close(), ErrClosed)
}

func TestPebbleAfterClose(t *testing.T) {
	t.Parallel()
	fs := vfs.NewMem()
	s, err := OpenPebble(PebbleOptions{Dir: testDir, FS: fs, Logger: discard})
	require.NoError(t, err)
	s.Save(key(0), stateOf(10))
	require.NoError(t, s.Close())

	require.ErrorIs(t, s.Close(), ErrClosed)
	require.ErrorIs(t, s.Flush(context.Background()), ErrClosed)
	_, _, err = s.Load(context.Background(), key(0))
	require.ErrorIs(t, err, ErrClosed)
	s.Save(key(0), stateOf(99)) // dropped

	s = openTestStore(t, fs)
	requireLoad(t, s, key(0), stateOf(10))
}

func TestPebbleLoadRejectsCorruptValue(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, vfs.NewMem())
	require.NoError(t, s.db.Set(EncodeKey(key(3)), []byte{9, 9}, nil))
	_, _, err := s.Load(context.Background(), key(3))
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, `partition 3`)
	require.ErrorContains(t, err, "unknown version 9")
}

func TestPebbleOptions(t *testing.T) {
	t.Parallel()
	_, err := OpenPebble(PebbleOptions{CacheSize: -1, MemTableSize: 10})
	require.ErrorContains(t, err, "PebbleOptions.Dir is empty")
	require.ErrorContains(t, err, "PebbleOptions.CacheSize -1 is negative")
	require.ErrorContains(t, err, "PebbleOptions.MemTableSize 10 is below 64 KiB")

	var o PebbleOptions
	o.EnsureDefaults()
	require.Equal(t, vfs.Default, o.FS)
	require.NotNil(t, o.Logger)
	require.Equal(t, uint64(DefaultMemTableSize), o.MemTableSize)
	require.Equal(t, int64(DefaultCacheSize), o.CacheSize)
}

func TestPebbleCreatesPrivateDirOnDisk(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "node", "checkpoints")
	s, err := OpenPebble(PebbleOptions{Dir: dir, Logger: discard})
	require.NoError(t, err)
	s.Save(key(0), stateOf(1))
	require.NoError(t, s.Close())
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

func BenchmarkPebbleFlush100(b *testing.B) {
	run := func(b *testing.B, opts PebbleOptions) {
		opts.Logger = discard
		s, err := OpenPebble(opts)
		require.NoError(b, err)
		defer s.Close()
		ctx := context.Background()
		b.ReportAllocs()
		for i := int64(0); b.Loop(); i++ {
			for p := range int32(100) {
				s.Save(key(p), stateOf(i*100, Range{i*100 + 2, i*100 + 5}))
			}
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("mem", func(b *testing.B) { run(b, PebbleOptions{Dir: testDir, FS: vfs.NewMem()}) })
	b.Run("disk", func(b *testing.B) { run(b, PebbleOptions{Dir: b.TempDir()}) })
}

// TestMinSyncIntervalBoundsFsyncs: however many callers flush, and however often, the
// store syncs at most once per MinSyncInterval, and every Flush still returns only after
// its saves are durable.
func TestMinSyncIntervalBoundsFsyncs(t *testing.T) {
	t.Parallel()
	const interval = 50 * time.Millisecond
	s, err := OpenPebble(PebbleOptions{Dir: "db", FS: vfs.NewMem(), MinSyncInterval: interval, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()

	start := time.Now()
	var wg sync.WaitGroup
	for g := range 8 { // eight tailers committing as fast as they can
		wg.Go(func() {
			for i := range 10 {
				k := Key{Group: "g", Topic: "t", Partition: int32(g)}
				s.Save(k, State{Watermark: int64(i + 1)})
				require.NoError(t, s.Flush(context.Background()))
				st, ok, err := s.Load(context.Background(), k)
				require.NoError(t, err)
				require.True(t, ok)
				require.GreaterOrEqual(t, st.Watermark, int64(i+1))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	flushes := s.Stats().Flushes
	require.LessOrEqual(t, flushes, uint64(elapsed/interval)+1,
		"%d syncs in %s: more than one per %s", flushes, elapsed, interval)
	require.Positive(t, flushes)
	t.Logf("80 flush calls from 8 goroutines: %d syncs in %s", flushes, elapsed)
}

// TestFlushNowAndHurryDoNotWait: with a sync slot an hour away, FlushNow syncs at once,
// and Hurry lets a Flush that waits for the slot go ahead; both return with their saves
// durable.
func TestFlushNowAndHurryDoNotWait(t *testing.T) {
	t.Parallel()
	s, err := OpenPebble(PebbleOptions{Dir: "db", FS: vfs.NewMem(), MinSyncInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	k := Key{Group: "g", Topic: "t", Partition: 0}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s.Save(k, State{Watermark: 1})
	require.NoError(t, s.Flush(ctx), "the first sync has no slot to wait for")
	s.Save(k, State{Watermark: 2})
	require.NoError(t, s.FlushNow(ctx), "FlushNow does not wait for the slot an hour away")
	require.EqualValues(t, 2, s.Stats().Flushes)

	s.Save(k, State{Watermark: 3})
	done := make(chan error, 1)
	go func() { done <- s.Flush(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Flush returned (%v) before its slot or a Hurry", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.Hurry()
	require.NoError(t, <-done)
	require.EqualValues(t, 3, s.Stats().Flushes)
	st, ok, err := s.Load(ctx, k)
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 3, st.Watermark)
}
