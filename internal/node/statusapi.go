package node

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kasync/kasync/internal/nodestatus"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler/rpc"
)

// statusService is the Node gRPC service (proto kasync.v1.Node): Status over the
// node's gRPC listener. It is registered on the server of Scheduler and Tasks, so the
// server's TLS and authentication interceptors (grpcSecurity) run before it.
//
// Who may read it: with node.grpc_auth.identities, any identity listed there, whatever
// its grant (a worker's, a tailer node's, a submitter's): grants say what an identity
// may push, serve and submit, while the status is what operators and their tools of
// any role look at; an authenticated identity not listed may do nothing, this
// included (PERMISSION_DENIED). Without identities, every authenticated caller may, as
// it may do everything else.
type statusService struct {
	kasyncv1.UnimplementedNodeServer
	n    *Node
	auth bool // callers are authenticated (node.grpc_auth)
	// readers are the identities that may read the status; nil allows every
	// authenticated caller.
	readers map[string]bool
}

// registerStatusAPI serves the Node service on the gRPC server (scheduler role).
func (n *Node) registerStatusAPI() {
	if n.grpcSrv == nil {
		return
	}
	s := &statusService{n: n, auth: n.cfg.Node.AuthEnabled()}
	if a := n.cfg.Node.GRPCAuth; s.auth && a != nil && len(a.Identities) > 0 {
		s.readers = make(map[string]bool, len(a.Identities))
		for _, id := range a.Identities {
			s.readers[id.Name] = true
		}
	}
	kasyncv1.RegisterNodeServer(n.grpcSrv, s)
}

// GetStatus answers the node's Status, before the call's deadline.
func (s *statusService) GetStatus(ctx context.Context, _ *kasyncv1.GetStatusRequest) (*kasyncv1.NodeStatus, error) {
	if s.auth {
		id, ok := rpc.IdentityFrom(ctx)
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "get status: no authenticated identity; the auth interceptors are not installed")
		}
		if s.readers != nil && !s.readers[id.Name] {
			s.n.log.Warn("status call refused: not authorized", "identity", id.Name, "via", id.Via)
			return nil, status.Errorf(codes.PermissionDenied, "get status: identity %q is not in node.grpc_auth.identities, so it may not read the status; list it there (any grant will do)", id.Name)
		}
	}
	ctx, cancel := context.WithDeadline(ctx, answerBy(ctx, time.Now()))
	defer cancel()
	return nodestatus.ToProto(s.n.Status(ctx)), nil
}

// statusReplyMargin is the most of a caller's deadline that GetStatus keeps for its
// answer to travel back.
const statusReplyMargin = 500 * time.Millisecond

// answerBy is when a GetStatus must stop reading the broker so that the caller gets
// what the node has, with the rest named in Problems, rather than DEADLINE_EXCEEDED:
// a quarter of the time left before the caller's deadline (at most statusReplyMargin)
// is kept for the answer. Without a deadline, Status bounds itself (statusTimeout).
func answerBy(ctx context.Context, now time.Time) time.Time {
	deadline, ok := ctx.Deadline()
	if !ok {
		return now.Add(statusTimeout)
	}
	left := max(deadline.Sub(now), 0)
	return deadline.Add(-min(left/4, statusReplyMargin))
}
