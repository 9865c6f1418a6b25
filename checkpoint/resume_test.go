package checkpoint

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		local     State
		haveLocal bool
		committed int64
		want      State
	}{
		{"nothing at all", State{}, false, -1, State{}},
		{"only a Kafka commit", State{}, false, 50, stateOf(50)},
		{"only local", stateOf(40, Range{45, 47}), true, -1, stateOf(40, Range{45, 47})},
		{"local ahead of Kafka keeps local and its done set", stateOf(40, Range{45, 47}), true, 30, stateOf(40, Range{45, 47})},
		{"Kafka ahead drops done offsets below it", stateOf(40, Range{45, 47}, Range{60, 61}), true, 50, stateOf(50, Range{60, 61})},
		{"Kafka inside a done range absorbs it", stateOf(40, Range{45, 47}, Range{60, 61}), true, 46, stateOf(47, Range{60, 61})},
		{"Kafka just below a done range absorbs it", stateOf(40, Range{45, 47}), true, 45, stateOf(47)},
		{"a local state whose done set touches its watermark is absorbed", stateOf(40, Range{40, 42}), true, -1, stateOf(42)},
		{"equal watermarks", stateOf(40, Range{45, 47}), true, 40, stateOf(40, Range{45, 47})},
		{"committed zero is a commit", State{}, false, 0, stateOf(0)},
		{"haveLocal false ignores local", stateOf(99, Range{120, 121}), false, 10, stateOf(10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := tc.local.Done.Clone()
			got := Resume(tc.local, tc.haveLocal, tc.committed)
			requireSameState(t, tc.want, got)
			// Never backwards from either source.
			if tc.haveLocal {
				require.GreaterOrEqual(t, got.Watermark, tc.local.Watermark)
			}
			require.GreaterOrEqual(t, got.Watermark, tc.committed)
			// The caller's state is untouched.
			require.Equal(t, rangesOf(&before), rangesOf(&tc.local.Done))
		})
	}
}

func TestStateClone(t *testing.T) {
	t.Parallel()
	st := stateOf(5, Range{7, 9})
	c := st.Clone()
	c.Done.Add(20)
	c.Watermark = 6
	requireSameState(t, stateOf(5, Range{7, 9}), st)
	requireSameState(t, stateOf(6, Range{7, 9}, Range{20, 21}), c)
}
