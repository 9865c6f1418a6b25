package tailer

// tokenTable maps the tokens of pushed workloads to their entries. A token is a slot
// index (low 32 bits) and the slot's generation (high 32 bits): registering takes a
// free slot and bumps its generation, so a token whose result was already taken — a
// duplicate, or a result for an older use of the slot — finds a different generation
// or an empty slot and gets nothing. It is a pure data structure (the caller locks),
// and allocates only when it grows: it holds at most as many slots as entries were
// ever pushed and unanswered at once, which MaxInFlight bounds.
type tokenTable struct {
	slots []tokenSlot
	free  []uint32 // indexes of empty slots
}

type tokenSlot struct {
	e   *entry // nil: empty
	gen uint32
}

// put registers e and returns its token.
func (t *tokenTable) put(e *entry) uint64 {
	var i uint32
	if k := len(t.free); k > 0 {
		i = t.free[k-1]
		t.free = t.free[:k-1]
	} else {
		i = uint32(len(t.slots))
		t.slots = append(t.slots, tokenSlot{})
	}
	s := &t.slots[i]
	s.gen++
	s.e = e
	return uint64(s.gen)<<32 | uint64(i)
}

// take returns the entry of token and forgets it, or nil if the token is unknown or
// was taken already.
func (t *tokenTable) take(token uint64) *entry {
	i, gen := token&(1<<32-1), uint32(token>>32)
	if i >= uint64(len(t.slots)) {
		return nil
	}
	s := &t.slots[i]
	if s.e == nil || s.gen != gen {
		return nil
	}
	e := s.e
	s.e = nil
	t.free = append(t.free, uint32(i))
	return e
}

// len is the number of registered entries.
func (t *tokenTable) len() int { return len(t.slots) - len(t.free) }
