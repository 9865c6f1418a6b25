package rpc

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

// codecSamples are one message of each kind kasync's streams carry, filled in, and a
// push batch large enough to take the codec's pooled-buffer path.
func codecSamples() []proto.Message {
	w := wl("f", "topic/3/42")
	w.Key = []byte("k")
	w.Headers = []scheduler.Header{{Key: "h", Value: []byte{0xff, 0}}}
	w.Created = time.UnixMilli(1_700_000_000_000)
	big := make([]*kasyncv1.Workload, 400)
	for i := range big {
		big[i] = WorkloadToProto(uint64(i+1), w)
	}
	return []proto.Message{
		&kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Hello{Hello: &kasyncv1.PushHello{Tailer: "t", PackedSuccesses: true, CreditInOutcomes: true}}},
		&kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Batch{Batch: &kasyncv1.WorkloadBatch{Workloads: big}}},
		&kasyncv1.PushResponse{Msg: &kasyncv1.PushResponse_Credit{Credit: &kasyncv1.Credit{Workloads: 7}}},
		&kasyncv1.PushResponse{Msg: &kasyncv1.PushResponse_Outcomes{Outcomes: &kasyncv1.OutcomeBatch{
			Outcomes:  []*kasyncv1.Outcome{OutcomeToProto(9, scheduler.Retriable(scheduler.ReasonError, "boom"))},
			Succeeded: []uint64{1, 2, 1 << 60}, Credit: 4,
		}}},
		&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Hello{Hello: &kasyncv1.WorkerHello{WorkerId: "w", Functions: []string{"f", "g"}, Capacity: 64, TaskBatches: true}}},
		&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Results{Results: &kasyncv1.TaskResultBatch{
			Results: []*kasyncv1.TaskResult{TaskResultToProto(3, scheduler.Fatal(scheduler.ReasonError, "bad"))}, Succeeded: []uint64{4}, Credit: 2,
		}}},
		&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Heartbeat{Heartbeat: &kasyncv1.Heartbeat{TaskIds: []uint64{5, 6}}}},
		&kasyncv1.WorkResponse{Msg: &kasyncv1.WorkResponse_Tasks{Tasks: &kasyncv1.TaskBatch{Tasks: []*kasyncv1.Task{TaskToProto(8, w, time.Second)}}}},
		&kasyncv1.WorkResponse{Msg: &kasyncv1.WorkResponse_Task{Task: TaskToProto(9, w, 0)}},
		&kasyncv1.WorkResponse{Msg: &kasyncv1.WorkResponse_Cancel{Cancel: &kasyncv1.CancelTask{TaskId: 9}}},
		&kasyncv1.SubmitRequest{Function: "f", Payload: []byte("p"), When: &kasyncv1.SubmitRequest_DelayMs{DelayMs: 200}, Priority: -1},
		&kasyncv1.TaskStatus{TaskId: "a/0/1", State: kasyncv1.TaskState_TASK_STATE_SUCCESS, Attempts: 2, LastError: "x"},
	}
}

// The codec and protobuf-go agree in both directions on every kind of message: what
// one encodes, the other decodes to an equal message.
func TestCodecMatchesProtobuf(t *testing.T) {
	t.Parallel()
	for _, m := range codecSamples() {
		name := string(m.ProtoReflect().Descriptor().Name())
		enc, err := codec{}.Marshal(m)
		require.NoError(t, err, name)
		got := m.ProtoReflect().New().Interface()
		require.NoError(t, proto.Unmarshal(enc.Materialize(), got), name)
		require.True(t, proto.Equal(m, got), "%s: protobuf-go decodes the codec's bytes to %v", name, got)
		enc.Free()

		b, err := proto.Marshal(m)
		require.NoError(t, err, name)
		back := m.ProtoReflect().New().Interface()
		require.NoError(t, codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, back), name)
		require.True(t, proto.Equal(m, back), "%s: the codec decodes protobuf-go's bytes to %v", name, back)
	}
}

// Every string field reachable from the hot-path messages is checked: a message with
// invalid UTF-8 in any one of them is refused, as protobuf-go refuses it. The fields
// are found by walking the descriptors, so a string field added later is covered.
func TestCodecChecksEveryString(t *testing.T) {
	t.Parallel()
	roots := []proto.Message{&kasyncv1.PushRequest{}, &kasyncv1.PushResponse{}, &kasyncv1.WorkRequest{}, &kasyncv1.WorkResponse{}}
	checked := 0
	for _, root := range roots {
		for _, path := range stringPaths(root.ProtoReflect().Descriptor(), nil, map[protoreflect.FullName]bool{}) {
			// protobuf-go refuses to encode invalid UTF-8: encode a placeholder and
			// replace its bytes.
			m := root.ProtoReflect().New()
			setPath(m, path, "GOODGOOD")
			b, err := proto.Marshal(m.Interface())
			require.NoError(t, err)
			b = bytes.Replace(b, []byte("GOODGOOD"), []byte("\xffBADBAD\xfe"), 1)
			name := string(root.ProtoReflect().Descriptor().Name()) + "." + pathName(path)
			require.Error(t, proto.Unmarshal(b, root.ProtoReflect().New().Interface()), "%s: protobuf-go accepts it", name)
			require.ErrorIs(t, codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, root.ProtoReflect().New().Interface()), errNotUTF8, name)
			checked++
		}
	}
	require.GreaterOrEqual(t, checked, 13, "the walk found the string fields")
}

// stringPaths lists the paths from d to every string field below it.
func stringPaths(d protoreflect.MessageDescriptor, prefix []protoreflect.FieldDescriptor, seen map[protoreflect.FullName]bool) [][]protoreflect.FieldDescriptor {
	if seen[d.FullName()] {
		return nil
	}
	seen[d.FullName()] = true
	defer delete(seen, d.FullName())
	var out [][]protoreflect.FieldDescriptor
	fs := d.Fields()
	for i := 0; i < fs.Len(); i++ {
		fd := fs.Get(i)
		p := append(append([]protoreflect.FieldDescriptor(nil), prefix...), fd)
		switch fd.Kind() {
		case protoreflect.StringKind:
			out = append(out, p)
		case protoreflect.MessageKind:
			out = append(out, stringPaths(fd.Message(), p, seen)...)
		}
	}
	return out
}

// setPath sets the string at the end of path, creating the messages (and one list
// element) on the way.
func setPath(m protoreflect.Message, path []protoreflect.FieldDescriptor, s string) {
	for _, fd := range path[:len(path)-1] {
		if fd.IsList() {
			l := m.Mutable(fd).List()
			if l.Len() == 0 {
				l.Append(l.NewElement())
			}
			m = l.Get(0).Message()
			continue
		}
		m = m.Mutable(fd).Message()
	}
	last := path[len(path)-1]
	if last.IsList() {
		m.Mutable(last).List().Append(protoreflect.ValueOfString(s))
		return
	}
	m.Set(last, protoreflect.ValueOfString(s))
}

func pathName(path []protoreflect.FieldDescriptor) string {
	names := make([]string, len(path))
	for i, fd := range path {
		names[i] = string(fd.Name())
	}
	return strings.Join(names, ".")
}

// FuzzCodecUnmarshal decodes arbitrary bytes as each stream message, with the codec
// and with protobuf-go. Whatever protobuf-go accepts, the codec decodes to equal
// known fields, except a known field with the wrong wire type, which protobuf-go
// keeps as an unknown field and the codec refuses. The codec is what every kasync gRPC server and client
// decodes with.
func FuzzCodecUnmarshal(f *testing.F) {
	for _, m := range codecSamples() {
		b, err := proto.Marshal(m)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x12, 0x03, 0x0a, 0x01, 0xff})
	roots := []proto.Message{&kasyncv1.PushRequest{}, &kasyncv1.PushResponse{}, &kasyncv1.WorkRequest{}, &kasyncv1.WorkResponse{}, &kasyncv1.SubmitRequest{}}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, root := range roots {
			want := root.ProtoReflect().New().Interface()
			wantErr := proto.Unmarshal(data, want)
			got := root.ProtoReflect().New().Interface()
			gotErr := codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(data))}, got)
			name := root.ProtoReflect().Descriptor().Name()
			switch {
			case wantErr != nil:
				// The generated decoder is more lenient with some malformed input (a
				// varint running past the end of a packed field, a mismatched group
				// end): it may accept what protobuf-go refuses. It must not panic, and
				// everything decoded is checked again where it is converted.
			case gotErr != nil:
				require.True(t, hasUnknown(want.ProtoReflect()), "%s: protobuf-go accepts it, the codec refuses it: %v", name, gotErr)
			default:
				// Unknown fields are kept as raw bytes, which may differ (a tag
				// varint written long); kasync never forwards them.
				discardUnknown(want.ProtoReflect())
				discardUnknown(got.ProtoReflect())
				require.True(t, proto.Equal(want, got), "%s: protobuf-go decodes %v, the codec %v", name, want, got)
			}
		}
	})
}

// discardUnknown drops the unknown fields of m and of every message below it.
func discardUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() != protoreflect.MessageKind:
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				discardUnknown(v.List().Get(i).Message())
			}
		default:
			discardUnknown(v.Message())
		}
		return true
	})
}

// hasUnknown reports whether m or a message below it kept unknown fields.
func hasUnknown(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() != protoreflect.MessageKind:
		case fd.IsList():
			for i := 0; !found && i < v.List().Len(); i++ {
				found = hasUnknown(v.List().Get(i).Message())
			}
		default:
			found = hasUnknown(v.Message())
		}
		return !found
	})
	return found
}

// BenchmarkCodec encodes and decodes a push batch of 64 workloads of 100 bytes, with
// the codec and with protobuf-go (reflection), the cost each split hop pays per batch.
func BenchmarkCodec(b *testing.B) {
	w := wl("f", "topic/3/42")
	w.Key = []byte("key-123")
	w.Payload = bytes.Repeat([]byte("p"), 100)
	w.Created = time.UnixMilli(1_700_000_000_000)
	batch := make([]*kasyncv1.Workload, 64)
	for i := range batch {
		batch[i] = WorkloadToProto(uint64(i+1), w)
	}
	m := &kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Batch{Batch: &kasyncv1.WorkloadBatch{Workloads: batch}}}
	enc, err := proto.Marshal(m)
	require.NoError(b, err)
	b.Run("encode/codec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := codec{}.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			d.Free()
		}
	})
	b.Run("encode/protobuf-go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/codec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got kasyncv1.PushRequest
			if err := (codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(enc)}, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/protobuf-go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got kasyncv1.PushRequest
			if err := proto.Unmarshal(enc, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
