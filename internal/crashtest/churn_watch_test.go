package crashtest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/kafkatest"
)

// commit is a committed offset the sampler saw change, and when it saw it.
type commit struct {
	part   int32
	offset int64
	at     time.Duration // since the run began; taken after the read
}

// offsetSampler reads the committed offsets of the churn's consumer groups (the source
// tailer's and every rung's) every few milliseconds until stopped, and keeps what a
// check needs: every offset that went backwards, and the changes of the source group's.
type offsetSampler struct {
	adm    *kadm.Client
	groups map[string]string // group → its topic
	source string            // the source group
	began  time.Time
	quit   chan struct{}
	wg     sync.WaitGroup

	samples, failed atomic.Int64
	mu              sync.Mutex
	last            map[string]map[int32]int64 // group → partition → latest committed offset
	backwards       []string
	changes         []commit // the source group's
}

func startOffsetSampler(t *testing.T, brokers []string, groups map[string]string, source string, began time.Time) *offsetSampler {
	t.Helper()
	s := &offsetSampler{adm: kafkatest.Admin(t, brokers), groups: groups, source: source, began: began,
		quit: make(chan struct{}), last: map[string]map[int32]int64{}}
	s.wg.Go(s.run)
	t.Cleanup(s.stop)
	return s
}

func (s *offsetSampler) run() {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	names := make([]string, 0, len(s.groups))
	for g := range s.groups {
		names = append(names, g)
	}
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fetched := s.adm.FetchManyOffsets(ctx, names...)
		cancel()
		at := time.Since(s.began)
		s.samples.Add(1)
		s.mu.Lock()
		for g, resp := range fetched {
			if resp.Err != nil {
				s.failed.Add(1) // a group not created yet, a broker busy with a rebalance: skip
				continue
			}
			s.record(g, resp.Fetched, at)
		}
		s.mu.Unlock()
	}
}

// record compares one group's offsets with its last ones. s.mu must be held.
func (s *offsetSampler) record(group string, fetched kadm.OffsetResponses, at time.Duration) {
	last := s.last[group]
	if last == nil {
		last = map[int32]int64{}
		s.last[group] = last
	}
	fetched.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil || o.Topic != s.groups[group] || o.At < 0 {
			return
		}
		prev, seen := last[o.Partition]
		switch {
		case seen && o.At < prev:
			s.backwards = append(s.backwards, fmt.Sprintf("%s %s/%d: %d after %d, at %s",
				group, o.Topic, o.Partition, o.At, prev, at.Round(time.Millisecond)))
		case seen && o.At == prev:
			return
		}
		last[o.Partition] = o.At
		if group == s.source {
			s.changes = append(s.changes, commit{part: o.Partition, offset: o.At, at: at})
		}
	})
}

// stop ends the sampling; it may be called again.
func (s *offsetSampler) stop() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.wg.Wait()
}

// result returns, once stopped, the offsets that went backwards and the source changes.
func (s *offsetSampler) result() (backwards []string, changes []commit) {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backwards, s.changes
}

// atEnd reports whether every group has committed the end of every partition of its
// topic.
func atEnd(t *testing.T, adm *kadm.Client, groups map[string]string) bool {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for g, topic := range groups {
		resps, err := adm.FetchOffsets(ctx, g)
		if err != nil || resps.Error() != nil {
			return false
		}
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil || ends.Error() != nil {
			return false
		}
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if c, ok := resps.Lookup(topic, o.Partition); o.Offset > 0 && (!ok || c.At != o.Offset) {
				done = false
			}
		})
		if !done {
			return false
		}
	}
	return true
}

// groupStable reports whether group is stable with n members: after a member left or
// its session expired, the others own its partitions.
func groupStable(t *testing.T, adm *kadm.Client, group string, n int) bool {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return false
	}
	g, ok := described[group]
	return ok && g.Err == nil && g.State == "Stable" && len(g.Members) == n
}

// pacedProducer produces events 0 ... n-1 to a topic evenly over a duration, so that
// the work flows while the churn goes on.
type pacedProducer struct {
	produced atomic.Int64
	done     chan struct{} // closed once every record was acknowledged or failed
	mu       sync.Mutex
	err      error
}

func startPacedProducer(t *testing.T, brokers []string, topic string, n int, over time.Duration) *pacedProducer {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kafka.ProducerOpts()...)
	ctx, cancel := context.WithCancel(context.Background())
	p := &pacedProducer{done: make(chan struct{})}
	go p.run(ctx, cl, topic, n, over)
	t.Cleanup(func() { // before the client's cleanup closes it
		cancel()
		<-p.done
	})
	return p
}

func (p *pacedProducer) run(ctx context.Context, cl *kgo.Client, topic string, n int, over time.Duration) {
	defer close(p.done)
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := 0; i < n; {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		}
		due := min(n, int(float64(n)*float64(time.Since(start))/float64(over))+1)
		for ; i < due; i++ {
			wg.Add(1)
			v := []byte(strconv.Itoa(i))
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: v, Value: v}, func(_ *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					p.mu.Lock()
					p.err = fmt.Errorf("event %s: %w", v, err)
					p.mu.Unlock()
					return
				}
				p.produced.Add(1)
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		p.mu.Lock()
		p.err = fmt.Errorf("flush: %w", err)
		p.mu.Unlock()
	}
	wg.Wait()
}

// wait waits until every event is acknowledged and fails the test on a produce error.
func (p *pacedProducer) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("the events were not all acknowledged within %s (%d were)", timeout, p.produced.Load())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	require.NoError(t, p.err, "producing the events")
}

// countInLogs counts, for each name, the lines of the files at paths that hold every
// string of its pattern.
func countInLogs(t *testing.T, paths []string, patterns map[string][]string) map[string]int {
	t.Helper()
	out := make(map[string]int, len(patterns))
	for _, path := range paths {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		for line := range strings.Lines(string(b)) {
			for name, all := range patterns {
				if !slices.ContainsFunc(all, func(s string) bool { return !strings.Contains(line, s) }) {
					out[name]++
				}
			}
		}
	}
	return out
}
