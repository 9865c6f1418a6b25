package checkpoint

// Resume returns the state a new owner of a partition starts from, given its local
// checkpoint (haveLocal false means there is none) and the offset committed to the Kafka
// consumer group (committed < 0 means none).
//
// The greater watermark wins: the Kafka commit is the hand-off copy written by whichever
// node owned the partition last, and the local checkpoint may be older (this node owned
// it before) or newer (the commit to Kafka lagged). Every offset below either is done.
// Done offsets above the result are kept, so they are skipped rather than run again;
// done offsets below it are dropped, and a done range that starts at the result is
// absorbed into it. The result's watermark is never below local.Watermark (when
// haveLocal) nor below committed (when ≥ 0). local.Done is not modified. With neither a
// local state nor a commit the result is the zero State; the caller then applies its start
// policy (earliest or latest) instead.
func Resume(local State, haveLocal bool, committed int64) State {
	var st State
	if haveLocal {
		st.Watermark = local.Watermark
		st.Done = local.Done.Clone()
	}
	if committed > st.Watermark {
		st.Watermark = committed
	}
	st.Watermark = st.Done.Absorb(st.Watermark)
	return st
}
