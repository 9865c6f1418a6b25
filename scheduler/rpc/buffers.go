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

// GRPCServerOptions are the gRPC server options every kasync gRPC server should get:
// the buffer pool sized for kasync's batch messages and the generated-code codec.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{experimental.BufferPool(bufferPool), grpc.ForceServerCodecV2(codec{})}
}

// DialOptions are GRPCServerOptions' counterpart for clients: the tailer's push stream,
// the SDK worker's Work stream and the CLI's calls.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		experimental.WithBufferPool(bufferPool),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(codec{})),
	}
}
