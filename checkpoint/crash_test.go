package checkpoint

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// crashIterations is 1,000 by default (the acceptance bar: 5-10 s with -race
// on two cores) and 10,000 with KASYNC_LONG=1.
func crashIterations() int {
	if os.Getenv("KASYNC_LONG") == "1" {
		return 10000
	}
	return 1000
}

// TestPebbleCrashRecovery saves increasing watermarks, flushes some of them, cuts the
// power at a random moment (sometimes in the middle of a flush), and reopens what
// survived. A saved watermark stands for work that truly completed, so for every
// partition the recovered checkpoint must never be ahead of it: the recovered watermark
// is one saved since the previous recovery (a write lost in an earlier crash must not come
// back), it is not above the newest saved, and it is not behind the newest one a Flush
// returned nil for. Its done set is the one saved with it.
//
// The power cut is vfs.NewCrashableMem + CrashClone, Pebble v2's equivalent of v1's
// vfs.NewStrictMem + ResetToSyncedState (v2 has no strict MemFS): CrashClone returns the
// filesystem as a crash would leave it, holding every synced byte and, with a zero
// CrashCloneCfg, nothing else; with UnsyncedDataPercent > 0 it also keeps a random share
// of the unsynced blocks and directory entries, as a real disk may.
func TestPebbleCrashRecovery(t *testing.T) {
	t.Parallel()
	const partitions = 4
	iterations := crashIterations()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("KASYNC_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "KASYNC_SEED must be an unsigned integer")
	}
	t.Logf("seed %d (rerun with KASYNC_SEED=%d), %d iterations", seed, seed, iterations)
	rng := rand.New(rand.NewPCG(seed, 3))
	ctx := context.Background()

	var (
		fs      = vfs.NewCrashableMem()
		saved   [partitions]map[int64]bool // every watermark saved since the last recovery
		last    [partitions]int64          // newest saved; -1 none
		flushed [partitions]int64          // newest a nil Flush covered; -1 none
	)
	for p := range partitions {
		saved[p] = map[int64]bool{}
		last[p], flushed[p] = -1, -1
	}

	for it := 0; it < iterations; it++ {
		s, err := OpenPebble(PebbleOptions{Dir: testDir, FS: fs, Logger: discard})
		require.NoError(t, err, "iteration %d: reopen", it)

		// What survived the previous crash.
		for p := range partitions {
			st, ok, err := s.Load(ctx, key(int32(p)))
			require.NoError(t, err)
			if !ok {
				require.Equal(t, int64(-1), flushed[p], "iteration %d partition %d: flushed state lost", it, p)
				// Whatever was saved is gone with the crash; it must not come back later.
				last[p] = -1
				clear(saved[p])
				continue
			}
			require.True(t, saved[p][st.Watermark], "iteration %d partition %d: recovered %d was never saved since the last recovery", it, p, st.Watermark)
			require.LessOrEqual(t, st.Watermark, last[p], "iteration %d partition %d: ahead of the newest saved", it, p)
			require.GreaterOrEqual(t, st.Watermark, flushed[p], "iteration %d partition %d: behind the last flush", it, p)
			require.Equal(t, []Range{{st.Watermark + 2, st.Watermark + 3}}, rangesOf(&st.Done))
			// Continue from what was recovered, as a restarted node would. The saves lost
			// with the crash never completed as far as the restarted node knows, so only
			// the recovered state and later saves may be found after the next crash.
			last[p] = st.Watermark
			flushed[p] = st.Watermark
			clear(saved[p])
			saved[p][st.Watermark] = true
		}

		for range 1 + rng.IntN(4) {
			for range 1 + rng.IntN(6) {
				p := rng.IntN(partitions)
				last[p] += 1 + rng.Int64N(50)
				saved[p][last[p]] = true
				s.Save(key(int32(p)), stateOf(last[p], Range{last[p] + 2, last[p] + 3}))
			}
			if rng.IntN(2) == 0 {
				require.NoError(t, s.Flush(ctx))
				flushed = last
			}
			if rng.IntN(8) == 0 {
				// Move the memtable into an sstable now and then, so recovery also reads
				// tables and manifests, not only the WAL.
				require.NoError(t, s.db.Flush())
			}
		}

		// One more round of saves, then crash: sometimes with a flush running, sometimes
		// keeping a random share of the unsynced writes.
		for p := range partitions {
			if rng.IntN(2) == 0 {
				last[p] += 1 + rng.Int64N(50)
				saved[p][last[p]] = true
				s.Save(key(int32(p)), stateOf(last[p], Range{last[p] + 2, last[p] + 3}))
			}
		}
		var flushing chan error
		if rng.IntN(3) == 0 {
			flushing = make(chan error, 1)
			go func() { flushing <- s.Flush(ctx) }()
		}
		cfg := vfs.CrashCloneCfg{}
		if pct := rng.IntN(4) * 33; pct > 0 {
			cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(rng.Uint64(), 0))}
		}
		crashed := fs.CrashClone(cfg)
		if flushing != nil {
			// Its outcome is unknown to the crashed disk: it may or may not have synced
			// before the cut, so the bounds stay as they were.
			require.NoError(t, <-flushing)
		}
		s.abandon()
		fs = crashed
	}
}
