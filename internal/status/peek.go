package status

import (
	"context"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafka"
)

// Peeks read little: a fetch response is at most peekMaxBytes, and at most
// peekPartitionBytes per partition (a broker still returns a first batch larger than
// that whole).
const (
	peekMaxBytes       = 8 << 20
	peekPartitionBytes = 64 << 10
)

// Peek reads the first record at or after each target with direct consumers (no
// group, no commits, closed before it returns), until every target is read or ctx
// ends, and returns what it read. A target whose partition fails or does not answer in
// time is left out: its age or due time is then unknown, never a guess. A partition
// with two targets (two groups at different offsets) is read once per target, in
// rounds, one client at a time. cc's Logger is not used: a peek that fails is an
// unknown fact, not a log line.
func Peek(ctx context.Context, cc kafka.ClientConfig, targets []PeekTarget) map[PeekTarget]Peeked {
	out := make(map[PeekTarget]Peeked, len(targets))
	for _, round := range peekRounds(targets) {
		if ctx.Err() != nil {
			break
		}
		peekRound(ctx, cc, round, out)
	}
	return out
}

type topicPartition struct {
	topic     string
	partition int32
}

// peekRounds splits targets into rounds in which every partition appears once, as one
// consumer reads a partition from one offset.
func peekRounds(targets []PeekTarget) []map[topicPartition]PeekTarget {
	var rounds []map[topicPartition]PeekTarget
	for _, t := range targets {
		tp := topicPartition{t.Topic, t.Partition}
		placed := false
		for _, r := range rounds {
			if _, taken := r[tp]; !taken {
				r[tp], placed = t, true
				break
			}
		}
		if !placed {
			rounds = append(rounds, map[topicPartition]PeekTarget{tp: t})
		}
	}
	return rounds
}

func peekRound(ctx context.Context, cc kafka.ClientConfig, round map[topicPartition]PeekTarget, out map[PeekTarget]Peeked) {
	from := map[string]map[int32]kgo.Offset{}
	for tp, t := range round {
		if from[tp.topic] == nil {
			from[tp.topic] = map[int32]kgo.Offset{}
		}
		from[tp.topic][tp.partition] = kgo.NewOffset().At(t.Offset)
	}
	cc.Logger = nil // a peek that fails is a "-" in the table, not a log line
	cl, err := kafka.NewClient(cc, kgo.ConsumePartitions(from),
		kgo.FetchMaxBytes(peekMaxBytes), kgo.FetchMaxPartitionBytes(peekPartitionBytes))
	if err != nil {
		return
	}
	defer cl.Close()
	todo := len(round)
	for todo > 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		var done []topicPartition
		fs.EachError(func(topic string, partition int32, _ error) {
			tp := topicPartition{topic, partition}
			if _, ok := round[tp]; ok {
				delete(round, tp)
				done = append(done, tp)
			}
		})
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			tp := topicPartition{r.Topic, r.Partition}
			t, ok := round[tp]
			if !ok || r.Offset < t.Offset {
				continue
			}
			out[t] = Peeked{Timestamp: r.Timestamp, Due: dueOf(r.Headers)}
			delete(round, tp)
			done = append(done, tp)
		}
		todo = len(round)
		if len(done) > 0 {
			pause := map[string][]int32{}
			for _, tp := range done {
				pause[tp.topic] = append(pause[tp.topic], tp.partition)
			}
			cl.PauseFetchPartitions(pause)
		}
	}
}

// dueOf is the time in a record's last kasync-due header; zero when there is none or
// it is not positive unix milliseconds.
func dueOf(headers []kgo.RecordHeader) time.Time {
	for i := len(headers) - 1; i >= 0; i-- {
		if headers[i].Key != delaystreams.HeaderDue {
			continue
		}
		ms, err := strconv.ParseInt(string(headers[i].Value), 10, 64)
		if err != nil || ms <= 0 {
			return time.Time{}
		}
		return time.UnixMilli(ms)
	}
	return time.Time{}
}
