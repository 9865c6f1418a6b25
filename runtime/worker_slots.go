package runtime

import (
	"cmp"
	"slices"
)

// A worker keeps one session per scheduler address at the same time, and its Capacity
// is shared between them. The Work protocol has no way to take credit back once a
// scheduler holds it, so the split has to stay honest without revocation:
//
//   - Every address has a fixed share of the capacity (Capacity/len(Addrs), the
//     remainder to the first addresses), whether or not it is connected.
//   - A session never holds more unused credit (granted: slots the scheduler may fill
//     but has not) than its share. Credit an idle scheduler sits on is thus at most its
//     share, and every other slot comes back as tasks end.
//   - Running tasks are not capped by the share: a busy scheduler fills the slots that
//     others do not use, up to Capacity in all, and each slot that frees goes first to a
//     live session whose running tasks plus credit are below its share.
//
// So at every moment the sum over sessions of (granted + held) plus free is Capacity,
// and a scheduler can never send a task the worker has no slot for; a session that
// (re)connects gets its share within the time its siblings' running tasks take to end.
// All of it is guarded by Worker.mu.

// slotShare is the share of capacity of address i of n.
func slotShare(capacity, n, i int) int {
	s := capacity / n
	if i < capacity%n {
		s++
	}
	return s
}

// joinLocked makes s a live session (one that takes credit) and tops up every live
// session; it returns the credit s gets now, to offer in its hello, not queued.
func (w *Worker) joinLocked(s *session) int {
	s.live, s.granted, s.held = true, 0, 0
	w.sessions = append(w.sessions, s)
	return w.topUpLocked(s)
}

// leaveLocked ends s's share: the credit its scheduler held is void with its stream, so
// those slots are free again, for the other sessions. Its tasks free their slots as
// they are answered. Idempotent.
func (w *Worker) leaveLocked(s *session) {
	if !s.live {
		return
	}
	s.live = false
	w.free += s.granted
	s.granted = 0
	w.sessions = slices.DeleteFunc(w.sessions, func(o *session) bool { return o == s })
	w.topUpLocked(nil)
}

// takeLocked moves n slots of s from credit to running tasks, as n tasks arrived, and
// tops up the sessions (s's credit fell); it returns how many of the tasks have a slot.
// Only a scheduler that sends more than its credit gets fewer (kasync's pool never
// does: invariant 4 of scheduler/rpc); so does a session that is no longer live.
func (w *Worker) takeLocked(s *session, n int) int {
	if !s.live {
		return 0
	}
	ok := min(n, s.granted)
	s.granted -= ok
	s.held += ok
	w.running += ok
	w.topUpLocked(nil)
	return ok
}

// releaseLocked frees the slot of a task of s that was answered and hands it on as
// credit where topUpLocked says. It returns the credit that goes back to s itself (0
// or 1), which the caller queues together with the task's result: the scheduler must
// see the result before the credit of its slot, or it would count one slot twice.
func (w *Worker) releaseLocked(s *session) int {
	s.held--
	w.running--
	w.free++
	return w.topUpLocked(s)
}

// topUpLocked hands free slots to live sessions as credit, queued for their senders
// except skip's, which it returns for the caller to send: first to the sessions whose running tasks
// and credit are below their share, the furthest below first; then to any whose unused
// credit is below its share, the least loaded first.
func (w *Worker) topUpLocked(skip *session) (skipped int) {
	if w.free <= 0 || len(w.sessions) == 0 {
		return 0
	}
	byLoad := w.byLoad[:0]
	byLoad = append(byLoad, w.sessions...)
	if len(byLoad) > 1 {
		slices.SortFunc(byLoad, func(a, b *session) int {
			return cmp.Compare(a.granted+a.held-a.share, b.granted+b.held-b.share)
		})
	}
	for pass := 0; pass < 2 && w.free > 0; pass++ {
		for _, s := range byLoad {
			room := s.share - s.granted
			if pass == 0 {
				room = s.share - s.granted - s.held
			}
			n := min(room, w.free)
			if n <= 0 {
				continue
			}
			w.free -= n
			s.granted += n
			if s == skip {
				skipped += n
			} else {
				s.queueCredit(uint32(n))
			}
		}
	}
	clear(byLoad)
	w.byLoad = byLoad[:0]
	return skipped
}

// queueCredit queues n slots of credit for the sender.
func (s *session) queueCredit(n uint32) {
	s.qmu.Lock()
	s.credit += n
	s.qmu.Unlock()
	select {
	case s.qnotify <- struct{}{}:
	default:
	}
}
