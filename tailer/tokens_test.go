package tailer

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTokenTableModel checks the token table against a map over random histories in
// which slots are reused many times: a token gives back its own entry exactly once;
// a token taken before, or one of an older use of a reused slot, gives nothing.
func TestTokenTableModel(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	var tt tokenTable
	live := map[uint64]*entry{}
	var taken []uint64 // tokens already taken: each must give nothing again
	maxLive := 0
	for i := range 200_000 {
		if r.IntN(2) == 0 && len(live) < 300 {
			e := &entry{offset: int64(i)}
			tok := tt.put(e)
			_, dup := live[tok]
			require.False(t, dup, "token %x given twice while live", tok)
			live[tok] = e
		} else {
			for tok, e := range live { // a random live token
				require.Same(t, e, tt.take(tok))
				delete(live, tok)
				taken = append(taken, tok)
				break
			}
		}
		if len(taken) > 0 && r.IntN(4) == 0 {
			require.Nil(t, tt.take(taken[r.IntN(len(taken))]), "a taken token must give nothing")
		}
		require.Equal(t, len(live), tt.len())
		maxLive = max(maxLive, len(live))
	}
	require.LessOrEqual(t, len(tt.slots), maxLive, "slots are reused, not grown per put")
	require.Nil(t, tt.take(uint64(len(tt.slots))+5), "an index never used gives nothing")
}
