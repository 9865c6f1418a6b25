package rpc

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A message's buffer is at most twice its size up to 4 MiB, so the pool's zeroing
// of a buffer's capacity costs at most twice the message, never a megabyte for a
// 40 KiB batch as with gRPC's default tiers.
func TestBufferPoolTiers(t *testing.T) {
	t.Parallel()
	for size := 257; size <= 4<<20; size = size*5/4 + 1 {
		b := bufferPool.Get(size)
		require.Len(t, *b, size)
		require.Less(t, cap(*b), 2*size, "size %d", size)
		bufferPool.Put(b)
	}
}
