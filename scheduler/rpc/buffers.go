package rpc

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// bufferPool is the pool gRPC takes its message buffers from on kasync's streams:
// a tier for every power of two from 256 B to 4 MiB. gRPC's default pool jumps
// from 32 KiB to 1 MiB and zeroes a buffer's whole capacity on every Get, so each
// batch message between the two (a push of a few hundred workloads, a batch of
// tasks or results) cleared a megabyte: about a tenth of the CPU of every process
// of a split deployment. With a tier per power of two, a buffer is at most twice
// its message.
var bufferPool = func() mem.BufferPool {
	var exps []uint8
	for e := uint8(8); e <= 22; e++ {
		exps = append(exps, e)
	}
	p, err := mem.NewBinaryTieredBufferPool(exps...)
	if err != nil {
		panic(fmt.Sprintf("rpc: gRPC buffer pool: %v", err)) // fixed sizes: cannot happen
	}
	return p
}()

// ServerOption is the gRPC server option every kasync gRPC server should get: the
// buffer pool sized for kasync's batch messages.
func ServerOption() grpc.ServerOption { return experimental.BufferPool(bufferPool) }

// DialOption is ServerOption's counterpart for clients: the tailer's push stream
// and the SDK worker's Work stream.
func DialOption() grpc.DialOption { return experimental.WithBufferPool(bufferPool) }
