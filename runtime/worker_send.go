package runtime

import (
	"context"
	goruntime "runtime"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler/rpc"
)

// maxResultsPerBatch bounds one TaskResultBatch: each result carries at most 4 KiB of
// error text, so a batch stays near 1 MiB at worst, under gRPC's 4 MiB default limit.
const maxResultsPerBatch = 256

// queue adds a result (when r is not nil) and one slot of credit (when credit) for the
// sender. A result and the credit of its slot are queued in one step, so the credit is
// never sent before the result.
func (s *session) queue(r *pendingResult, credit bool) {
	s.qmu.Lock()
	if r != nil {
		s.queued = append(s.queued, *r)
	}
	if credit {
		s.credit++
	}
	s.qmu.Unlock()
	select {
	case s.qnotify <- struct{}{}:
	default:
	}
}

// sendLoop is the session's sender: whenever something is queued it sends all that is
// queued, until ctx ends. It never waits for company: a lone result goes out at once,
// and results that finish while a send is under way go out together in the next one.
func (s *session) sendLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.qnotify:
		}
		// Let tasks that are finishing queue their results first, so they go in the
		// same message; a lone result waits for nothing.
		goruntime.Gosched()
		s.flush()
	}
}

// flush sends what is queued: results, then the credit (after the results whose slots
// it frees). Nothing is sent on a dead stream; a failed send is noticed by receive.
func (s *session) flush() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.qmu.Lock()
	rs, credit := s.queued, s.credit
	s.queued, s.credit = s.spare[:0], 0
	s.qmu.Unlock()
	if !s.dead && (len(rs) > 0 || credit > 0) {
		if s.batches {
			_ = s.sendBatches(rs, credit)
		} else {
			_ = s.sendOneByOne(rs, credit)
		}
	}
	clear(rs)
	s.spare = rs[:0]
}

// sendBatches sends rs as TaskResultBatch messages of at most maxResultsPerBatch
// results, the credit in the last one; plain successes go as packed task ids when the
// scheduler takes them. Callers hold sendMu.
func (s *session) sendBatches(rs []pendingResult, credit uint32) error {
	for first := true; first || len(rs) > 0; first = false {
		n := min(len(rs), maxResultsPerBatch)
		b := resultBatch(rs[:n], s.packed)
		if n == len(rs) {
			b.Credit = credit
		}
		if err := s.stream.Send(&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Results{Results: b}}); err != nil {
			return err
		}
		rs = rs[n:]
	}
	return nil
}

// resultBatch is the wire form of rs. Fresh memory per message (gRPC may read it after
// Send returns); the results of a batch are one allocation.
func resultBatch(rs []pendingResult, packed bool) *kasyncv1.TaskResultBatch {
	b := &kasyncv1.TaskResultBatch{}
	others := len(rs)
	if packed {
		ok := 0
		for _, r := range rs {
			if rpc.IsPlainSuccess(r.o) {
				ok++
			}
		}
		b.Succeeded = make([]uint64, 0, ok)
		others -= ok
	}
	results := make([]kasyncv1.TaskResult, others)
	b.Results = make([]*kasyncv1.TaskResult, others)
	i := 0
	for _, r := range rs {
		if packed && rpc.IsPlainSuccess(r.o) {
			b.Succeeded = append(b.Succeeded, r.id)
			continue
		}
		rpc.FillTaskResult(&results[i], r.id, r.o)
		b.Results[i] = &results[i]
		i++
	}
	return b
}

// sendOneByOne is the protocol for schedulers that do not take batches: one
// TaskResult per message, then one WorkCredit. Callers hold sendMu.
func (s *session) sendOneByOne(rs []pendingResult, credit uint32) error {
	for _, r := range rs {
		m := &kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Result{Result: rpc.TaskResultToProto(r.id, r.o)}}
		if err := s.stream.Send(m); err != nil {
			return err
		}
	}
	if credit == 0 {
		return nil
	}
	return s.stream.Send(&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Credit{Credit: &kasyncv1.WorkCredit{N: credit}}})
}
