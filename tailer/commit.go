package tailer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kasync/kasync/checkpoint"
)

// commitLoop writes the checkpoints of changed partitions every CommitInterval, or
// sooner once CommitCount records completed since the last write. Each write may take
// at most RevokeTimeout: it holds commitMu, which a revocation needs, and franz-go
// retries a group commit the coordinator refuses until its context ends. No write
// starts while a release waits for commitMu, so a release waits for one write at most.
// A write cut short is done again at the next tick.
func (t *Tailer) commitLoop(ctx context.Context) {
	ticker := time.NewTicker(t.cfg.CommitInterval)
	defer ticker.Stop()
	for {
		urgent := false
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-t.commitNow:
			urgent = true // CommitCount completions wait; reading stops at the bound
		}
		if t.releasing.Load() > 0 {
			continue // a release commits what it gives up; the rest waits for the next tick
		}
		wctx, cancel := context.WithTimeout(ctx, t.cfg.RevokeTimeout)
		err := t.commit(wctx, urgent)
		cancel()
		switch {
		case err == nil:
			t.refusalLogged.Store(false)
		case ctx.Err() != nil:
		case refusedAsStale(err):
			t.stats.commitsRefused.Add(1)
			if !t.refusalLogged.Swap(true) {
				t.log.Warn("checkpoint commit failed: the group refused it, this member's generation is no longer "+
					"current (its partitions moved or are moving); Pebble keeps the progress, and a partition still "+
					"ours is committed again in the new generation (repeats are not logged until a commit succeeds)",
					"err", err)
			}
		default:
			t.errLog.Log(t.log, slog.LevelWarn, "commit", "checkpoint commit failed; will retry", "err", err)
		}
	}
}

// refusedAsStale reports whether err is the group coordinator refusing a commit because
// the member's generation is gone: the broker-side fence that keeps a member that lost
// its partitions (or is losing them) from committing over their next owner. Retrying it
// as it is would fail the same way; franz-go rejoins, and the partitions are released
// (fenced) before it does, so nothing of theirs is ever sent in the new generation.
func refusedAsStale(err error) bool {
	for _, stale := range []error{kerr.IllegalGeneration, kerr.UnknownMemberID, kerr.FencedInstanceID,
		kerr.RebalanceInProgress, kerr.StaleMemberEpoch, kerr.FencedMemberEpoch} {
		if errors.Is(err, stale) {
			return true
		}
	}
	return false
}

// commit writes the checkpoint of every owned partition whose progress changed.
// An urgent write does not wait for the store's next sync slot (UrgentFlusher).
func (t *Tailer) commit(ctx context.Context, urgent bool) error {
	t.commitMu.Lock()
	defer t.commitMu.Unlock()
	// The completions counted so far are in the snapshot below (a record is marked done
	// in its window before it is counted): once it is synced, a crash no longer runs them
	// again, and pollLoop may read that many more.
	taken := t.sinceCommit.Swap(0)
	t.writing.Add(taken)
	t.mu.Lock()
	parts := make([]*partition, 0, len(t.parts))
	for _, p := range t.parts {
		parts = append(parts, p)
	}
	t.mu.Unlock()

	states := make(map[*partition]checkpoint.State, len(parts))
	for _, p := range parts {
		p.mu.Lock()
		if !p.fenced && p.dirty {
			if st, ok := p.stateLocked(); ok {
				states[p] = st
				p.dirty = false
			}
		}
		p.mu.Unlock()
	}
	synced, err := t.writeCheckpoints(ctx, states, true, urgent)
	t.writing.Add(-taken)
	if synced {
		notify(t.room)
	} else {
		t.sinceCommit.Add(taken) // still to be made durable, by the next write
	}
	if err != nil {
		// Write them again next time.
		for p := range states {
			p.mu.Lock()
			p.dirty = true
			p.mu.Unlock()
		}
	}
	return err
}

// writeCheckpoints makes states durable in the store (one sync) and then, if toGroup,
// commits their watermarks to the consumer group as the hand-off copy for the next
// owner. synced reports whether the store synced them, even if the group commit then
// failed. The caller holds commitMu, so a revocation cannot interleave: no commit for a
// partition lands after the partition was released.
func (t *Tailer) writeCheckpoints(ctx context.Context, states map[*partition]checkpoint.State, toGroup, urgent bool) (synced bool, _ error) {
	if len(states) == 0 {
		return true, nil
	}
	offsets := make(map[int32]kgo.EpochOffset, len(states))
	for p, st := range states {
		t.cfg.Store.Save(p.key, st)
		offsets[p.key.Partition] = kgo.EpochOffset{Epoch: -1, Offset: st.Watermark}
	}
	flush := t.cfg.Store.Flush
	if urgent && t.urgent != nil {
		flush = t.urgent.FlushNow
	}
	if err := flush(ctx); err != nil {
		return false, fmt.Errorf("tailer %s: flush checkpoints: %w", t.cfg.Name, err)
	}
	if !toGroup {
		return true, nil
	}
	var commitErr error
	t.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{t.cfg.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				commitErr = err
				return
			}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
						commitErr = errors.Join(commitErr, fmt.Errorf("partition %d: %w", rp.Partition, err))
					}
				}
			}
		})
	if commitErr != nil {
		return true, fmt.Errorf("tailer %s: commit to group %s: %w", t.cfg.Name, t.cfg.Group, commitErr)
	}
	return true, nil
}
