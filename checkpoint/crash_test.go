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

// crashIterations is 200 by default (a few seconds with -race) and 2000 with KASYNC_LONG=1.
func crashIterations() int {
	if os.Getenv("KASYNC_LONG") == "1" {
		return 2000
	}
	return 200
}

// TestPebbleCrashRecovery saves increasing watermarks, flushes some of them, cuts the
// power at a random moment (sometimes in the middle of a flush), and reopens what
// survived. For every partition the recovered watermark is one that was saved, and it is
// not behind the last one a Flush returned nil for.
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
		saved   [partitions]map[int64]bool // every watermark ever saved
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
				last[p] = -1 // whatever was saved is gone with the crash
				continue
			}
			require.True(t, saved[p][st.Watermark], "iteration %d partition %d: recovered %d was never saved", it, p, st.Watermark)
			require.GreaterOrEqual(t, st.Watermark, flushed[p], "iteration %d partition %d: behind the last flush", it, p)
			require.Equal(t, []Range{{st.Watermark + 2, st.Watermark + 3}}, rangesOf(&st.Done))
			// Continue from what was recovered, as a restarted node would.
			last[p] = st.Watermark
			flushed[p] = st.Watermark
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
