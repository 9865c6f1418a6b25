package rpc

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
)

// vtMessage is what protoc-gen-go-vtproto generates for every kasync message
// (proto/kasync/v1/kasync_vtproto.pb.go): marshalling and unmarshalling without
// protobuf-go's reflection.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT(dst []byte) (int, error)
	UnmarshalVT(src []byte) error
}

// codec is the gRPC codec of kasync's streams. It speaks the protobuf wire format,
// under gRPC's usual name "proto", so any gRPC client of kasync's services is
// unaffected; it only encodes and decodes kasync's own messages with the generated
// vtproto code, which is several times faster than reflection and allocates less.
// Per task, a split deployment encodes and decodes a workload and a task once each,
// so this is on every task's path. Messages without vtproto code (none today)
// take the ordinary protobuf path.
//
// Buffers come from bufferPool, the pool the transport uses too, sized for
// kasync's batch messages.
type codec struct{}

var _ encoding.CodecV2 = codec{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMessage)
	if !ok {
		return marshalReflect(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
			return nil, fmt.Errorf("rpc: marshal %T: %w", v, err)
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	buf := bufferPool.Get(size)
	if _, err := m.MarshalToSizedBufferVT((*buf)[:size]); err != nil {
		bufferPool.Put(buf)
		return nil, fmt.Errorf("rpc: marshal %T: %w", v, err)
	}
	*buf = (*buf)[:size]
	return mem.BufferSlice{mem.NewBuffer(buf, bufferPool)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	buf := data.MaterializeToBuffer(bufferPool)
	defer buf.Free()
	if m, ok := v.(vtMessage); ok {
		// UnmarshalVT copies every bytes and string field out of buf, so nothing
		// decoded refers to the pooled buffer freed on return.
		if err := m.UnmarshalVT(buf.ReadOnlyData()); err != nil {
			return fmt.Errorf("rpc: unmarshal %T: %w", v, err)
		}
		// protobuf-go refuses a proto3 string that is not UTF-8; the generated code
		// does not check, so the codec does, to accept exactly what protobuf-go does.
		if err := checkUTF8(v); err != nil {
			return fmt.Errorf("rpc: unmarshal %T: %w", v, err)
		}
		return nil
	}
	pm, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("rpc: unmarshal: %T is not a protobuf message", v)
	}
	return proto.Unmarshal(buf.ReadOnlyData(), pm)
}

func marshalReflect(v any) (mem.BufferSlice, error) {
	pm, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("rpc: marshal: %T is not a protobuf message", v)
	}
	b, err := proto.Marshal(pm)
	if err != nil {
		return nil, fmt.Errorf("rpc: marshal %T: %w", v, err)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// errNotUTF8 is protobuf-go's refusal of a string field that is not UTF-8, worded as
// the codec's.
var errNotUTF8 = errors.New("a string field is not valid UTF-8")

// checkUTF8 checks every string field of a decoded message. The four messages of the
// hot path are checked field by field, without reflection; TestCodecChecksEveryString
// walks their descriptors so that a string field added to them later cannot be
// missed. Any other message is walked by reflection.
func checkUTF8(v any) error {
	ok := true
	str := func(s string) { ok = ok && utf8.ValidString(s) }
	switch m := v.(type) {
	case *kasyncv1.PushRequest:
		str(m.GetHello().GetTailer())
		for _, w := range m.GetBatch().GetWorkloads() {
			str(w.GetId())
			str(w.GetFunction())
			str(w.GetSource())
		}
	case *kasyncv1.PushResponse:
		for _, o := range m.GetOutcomes().GetOutcomes() {
			str(o.GetReason())
			str(o.GetError())
		}
	case *kasyncv1.WorkRequest:
		str(m.GetHello().GetWorkerId())
		for _, f := range m.GetHello().GetFunctions() {
			str(f)
		}
		str(m.GetResult().GetReason())
		str(m.GetResult().GetError())
		for _, r := range m.GetResults().GetResults() {
			str(r.GetReason())
			str(r.GetError())
		}
	case *kasyncv1.WorkResponse:
		task := func(t *kasyncv1.Task) {
			str(t.GetId())
			str(t.GetFunction())
			str(t.GetSource())
		}
		task(m.GetTask())
		for _, t := range m.GetTasks().GetTasks() {
			task(t)
		}
	case proto.Message:
		ok = reflectUTF8(m.ProtoReflect())
	}
	if !ok {
		return errNotUTF8
	}
	return nil
}

// reflectUTF8 reports whether every string field of m, at any depth, is UTF-8.
func reflectUTF8(m protoreflect.Message) bool {
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; ok && i < l.Len(); i++ {
				ok = valueUTF8(fd, l.Get(i))
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				ok = (fd.MapKey().Kind() != protoreflect.StringKind || utf8.ValidString(k.String())) &&
					valueUTF8(fd.MapValue(), mv)
				return ok
			})
		default:
			ok = valueUTF8(fd, v)
		}
		return ok
	})
	return ok
}

func valueUTF8(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return utf8.ValidString(v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return reflectUTF8(v.Message())
	}
	return true
}
