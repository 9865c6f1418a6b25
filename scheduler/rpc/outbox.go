package rpc

import (
	"sync"
	"time"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

// Limits of one TaskBatch. A batch is cut at whichever comes first; a task larger than
// maxBatchBytes goes alone. Both keep a batch well under gRPC's default 4 MiB message
// limit on the worker's side.
const (
	maxTasksPerBatch = 256
	maxBatchBytes    = 1 << 20
)

// outMsg is one message owed to a worker: a task to run, or (w nil) a CancelTask. It
// is turned into its wire form by the stream's sender goroutine, not by Execute.
type outMsg struct {
	id      uint64
	w       *scheduler.Workload // nil: cancel task id
	timeout time.Duration
}

// outbox queues messages for one Work stream; the stream's sender goroutine drains it.
// It is bounded by the worker's capacity: at most one task and one cancel per slot.
type outbox struct {
	mu     sync.Mutex
	msgs   []outMsg
	notify chan struct{} // buffered 1
}

func newOutbox() *outbox { return &outbox{notify: make(chan struct{}, 1)} }

func (o *outbox) push(m outMsg) {
	o.mu.Lock()
	o.msgs = append(o.msgs, m)
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

func (o *outbox) task(id uint64, w *scheduler.Workload, timeout time.Duration) {
	o.push(outMsg{id: id, w: w, timeout: timeout})
}

func (o *outbox) cancel(id uint64) { o.push(outMsg{id: id}) }

// take moves every queued message to dst (reused) and returns it.
func (o *outbox) take(dst []outMsg) []outMsg {
	o.mu.Lock()
	defer o.mu.Unlock()
	dst = append(dst[:0], o.msgs...)
	clear(o.msgs)
	o.msgs = o.msgs[:0]
	return dst
}

// sendMsgs sends msgs in order: each run of consecutive tasks as TaskBatch messages
// when the worker takes batches (a lone task as a plain Task), else one Task per
// message; cancels one per message. Nothing waits for more to come: what is queued
// when the sender is free goes out at once (natural batching).
func sendMsgs(send func(*kasyncv1.WorkResponse) error, msgs []outMsg, batches bool) error {
	for i := 0; i < len(msgs); {
		m := msgs[i]
		if m.w == nil {
			if err := send(cancelMsg(m.id)); err != nil {
				return err
			}
			i++
			continue
		}
		limit := 1
		if batches {
			limit = maxTasksPerBatch
		}
		j, size := i+1, taskWireSize(m.w)
		for ; j < len(msgs) && j-i < limit && msgs[j].w != nil; j++ {
			if size += taskWireSize(msgs[j].w); size > maxBatchBytes {
				break
			}
		}
		if err := send(tasksMsg(msgs[i:j])); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// tasksMsg is one Task, or a TaskBatch of several. The tasks of a batch are one
// allocation; each message gets fresh memory, as gRPC may read it after Send returns
// (stats handlers).
func tasksMsg(msgs []outMsg) *kasyncv1.WorkResponse {
	tasks := make([]kasyncv1.Task, len(msgs))
	for i, m := range msgs {
		taskToProto(&tasks[i], m.id, m.w, m.timeout)
	}
	if len(msgs) == 1 {
		return &kasyncv1.WorkResponse{Msg: &kasyncv1.WorkResponse_Task{Task: &tasks[0]}}
	}
	ptrs := make([]*kasyncv1.Task, len(tasks))
	for i := range tasks {
		ptrs[i] = &tasks[i]
	}
	return &kasyncv1.WorkResponse{Msg: &kasyncv1.WorkResponse_Tasks{Tasks: &kasyncv1.TaskBatch{Tasks: ptrs}}}
}

// taskWireSize estimates the encoded size of a task: its variable parts, plus room for
// the fixed fields and tags.
func taskWireSize(w *scheduler.Workload) int {
	return w.Size() + len(w.ID) + len(w.Function) + len(w.Source) + 8*len(w.Headers) + 64
}

func cancelMsg(id uint64) *kasyncv1.WorkResponse {
	return &kasyncv1.WorkResponse{Msg: &kasyncv1.WorkResponse_Cancel{Cancel: &kasyncv1.CancelTask{TaskId: id}}}
}
