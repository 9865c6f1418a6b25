package checkpoint

// Clone returns a deep copy of st. Save takes ownership of a State's Done set, so a caller
// that keeps mutating its live state saves a clone.
func (st State) Clone() State {
	return State{Watermark: st.Watermark, Done: st.Done.Clone()}
}
