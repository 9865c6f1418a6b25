package bench

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kasync/kasync/internal/bench/benchproto"
)

// The payload of every benchmark record: the produce time (benchproto.Stamp, 0 for a
// warm-up record), then the record's sequence number, then padding to --size.
const (
	payloadSeq = benchproto.StampSize
	minPayload = payloadSeq + 8
)

// newPayload returns a payload of size bytes (at least minPayload) for record seq,
// stamped now (or left 0: a warm-up).
func newPayload(size int, seq uint64, now time.Time, warmUp bool) []byte {
	p := make([]byte, max(size, minPayload))
	if !warmUp {
		benchproto.Stamp(p, now)
	}
	binary.BigEndian.PutUint64(p[payloadSeq:], seq)
	return p
}

// trackerShards spreads the starts of concurrent functions over this many locks.
const trackerShards = 32

// tracker counts function starts, once per sequence number, and their latency. It is
// safe for concurrent use: starts are spread over shards by sequence number.
type tracker struct {
	want       int64 // distinct starts that make the run complete
	partitions int   // warm-up records must have come from this many partitions before ready

	shards [trackerShards]trackerShard
	count  atomic.Int64
	dups   atomic.Int64
	first  atomic.Int64 // unix ns; 0 until the first start
	last   atomic.Int64

	warmMu sync.Mutex
	warm   map[int32]bool
	ready  chan struct{} // closed once warm-ups from every partition ran (or at once, partitions 0)
	done   chan struct{} // closed when want distinct starts happened
	closeD sync.Once
}

type trackerShard struct {
	mu   sync.Mutex
	seen []uint64 // bit per sequence number / trackerShards
	lat  benchproto.Histogram
	_    [64]byte // keep shards off each other's cache lines
}

func newTracker(want int64, partitions int) *tracker {
	t := &tracker{want: want, partitions: partitions, warm: map[int32]bool{},
		ready: make(chan struct{}), done: make(chan struct{})}
	per := (want/trackerShards + 64) / 64
	for i := range t.shards {
		t.shards[i].seen = make([]uint64, per)
	}
	if partitions == 0 {
		close(t.ready)
	}
	if want == 0 {
		close(t.done)
	}
	return t
}

// start records that the function started on payload (from partition, -1 where not
// known) at now. It reports whether this is the first start of that record; a warm-up
// or malformed payload reports false.
func (t *tracker) start(payload []byte, partition int32, now time.Time) bool {
	stamp, ok := benchproto.Stamped(payload)
	if !ok || len(payload) < minPayload {
		return false
	}
	if stamp.UnixNano() == 0 {
		t.warmUp(partition)
		return false
	}
	seq := binary.BigEndian.Uint64(payload[payloadSeq:])
	if seq >= uint64(t.want) {
		return false // not this run's: a record of an earlier run on a reused topic
	}
	sh := &t.shards[seq%trackerShards]
	idx, bit := (seq/trackerShards)/64, uint64(1)<<((seq/trackerShards)%64)
	sh.mu.Lock()
	if sh.seen[idx]&bit != 0 {
		sh.mu.Unlock()
		t.dups.Add(1)
		return false
	}
	sh.seen[idx] |= bit
	sh.lat.Record(now.Sub(stamp))
	sh.mu.Unlock()

	ns := now.UnixNano()
	t.first.CompareAndSwap(0, ns)
	for {
		l := t.last.Load()
		if ns <= l || t.last.CompareAndSwap(l, ns) {
			break
		}
	}
	if t.count.Add(1) == t.want {
		t.closeD.Do(func() { close(t.done) })
	}
	return true
}

func (t *tracker) warmUp(partition int32) {
	t.warmMu.Lock()
	defer t.warmMu.Unlock()
	if len(t.warm) >= t.partitions {
		return
	}
	t.warm[partition] = true
	if len(t.warm) == t.partitions {
		close(t.ready)
	}
}

// result is what the tracker measured.
func (t *tracker) result() *benchproto.Result {
	r := &benchproto.Result{Count: t.count.Load(), Duplicates: t.dups.Load(), Latency: &benchproto.Histogram{}}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		r.Latency.Merge(&sh.lat)
		sh.mu.Unlock()
	}
	r.FirstStart, r.LastStart = t.first.Load(), t.last.Load()
	return r
}

// partitionOfID reads the partition out of a task id "<topic>/<partition>/<offset>";
// -1 when it has another form.
func partitionOfID(id string) int32 {
	i := strings.LastIndexByte(id, '/')
	if i <= 0 {
		return -1
	}
	j := strings.LastIndexByte(id[:i], '/')
	p, err := strconv.ParseInt(id[j+1:i], 10, 32)
	if err != nil {
		return -1
	}
	return int32(p)
}
