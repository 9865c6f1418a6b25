package tailer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/internal/kafkatest"
)

// watch is a group whose checkpoints the sampler reads, and its topic.
type watch struct {
	group, topic string
	partitions   int32
}

// sample is what one watch's checkpoints were at one moment: at is taken after they
// were read, so whatever they passed was done before at.
type sample struct {
	watch     watch
	at        time.Time
	committed map[int32]int64
	pebble    map[int32]checkpoint.State
}

// sampler reads the group commits and Pebble checkpoints of its watches every few
// milliseconds until stopped. A read that fails (a broker fault) is skipped.
type sampler struct {
	adm     *kadm.Client
	store   checkpoint.Store
	watches []watch
	quit    chan struct{}
	wg      sync.WaitGroup

	mu      sync.Mutex
	samples []sample
}

func startSampler(t *testing.T, brokers []string, store checkpoint.Store, watches []watch) *sampler {
	t.Helper()
	s := &sampler{adm: kafkatest.Admin(t, brokers), store: store, watches: watches, quit: make(chan struct{})}
	s.wg.Go(s.run)
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *sampler) run() {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		for _, w := range s.watches {
			if sm, ok := s.read(w); ok {
				s.mu.Lock()
				s.samples = append(s.samples, sm)
				s.mu.Unlock()
			}
		}
	}
}

func (s *sampler) read(w watch) (sample, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	committed, err := s.committed(ctx, w)
	if err != nil {
		return sample{}, false
	}
	sm := sample{watch: w, committed: committed, pebble: map[int32]checkpoint.State{}}
	for p := range w.partitions {
		st, ok, err := s.store.Load(ctx, checkpoint.Key{Group: w.group, Topic: w.topic, Partition: p})
		if err != nil {
			return sample{}, false
		}
		if ok {
			sm.pebble[p] = st
		}
	}
	sm.at = time.Now()
	return sm, true
}

func (s *sampler) committed(ctx context.Context, w watch) (map[int32]int64, error) {
	resps, err := s.adm.FetchOffsets(ctx, w.group)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	resps.Each(func(o kadm.OffsetResponse) {
		if o.Topic == w.topic {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

// allCommitted reports whether every watch's group committed the end of its topic.
func (s *sampler) allCommitted(ctx context.Context) bool {
	for _, w := range s.watches {
		committed, err := s.committed(ctx, w)
		if err != nil {
			return false
		}
		ends, err := s.adm.ListEndOffsets(ctx, w.topic)
		if err != nil || ends.Error() != nil {
			return false
		}
		at := true
		ends.Each(func(o kadm.ListedOffset) {
			if committed[o.Partition] != o.Offset {
				at = false
			}
		})
		if !at {
			return false
		}
	}
	return true
}

// stop ends the sampling and returns the samples; later calls return nil.
func (s *sampler) stop() []sample {
	select {
	case <-s.quit:
		return nil
	default:
	}
	close(s.quit)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.samples
	s.samples = nil
	return out
}
