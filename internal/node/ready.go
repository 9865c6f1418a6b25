package node

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/connectivity"
)

// readyTimeout bounds the broker round trip of one /readyz.
const readyTimeout = 2 * time.Second

// ready reports what keeps the node from doing its work, one problem per entry; none
// means ready. It checks what the node runs: Pebble (checkpoints are durable: the
// store is open and its latest flush succeeded), the broker (a metadata round trip),
// every tailer's consumer group membership, and the connection to a remote scheduler.
// A scheduler-only node needs none of Kafka and is ready while it serves.
func (n *Node) ready(ctx context.Context) []string {
	var problems []string
	if n.store != nil {
		if err := n.store.Ready(); err != nil {
			problems = append(problems, fmt.Sprintf("checkpoints: %v", err))
		}
	}
	if n.producer != nil {
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		err := n.producer.Ping(ctx)
		cancel()
		if err != nil {
			problems = append(problems, fmt.Sprintf("kafka: no broker of %s answered within %v: %v",
				strings.Join(n.cfg.Kafka.Brokers, ","), readyTimeout, err))
		}
	}
	for _, t := range n.tailers {
		if member, _ := t.GroupMember(); member == "" {
			problems = append(problems, fmt.Sprintf("tailer %s: not a member of consumer group %s yet", t.Name(), t.Group()))
		}
	}
	if n.conn != nil {
		if st := n.conn.GetState(); st == connectivity.TransientFailure || st == connectivity.Shutdown {
			problems = append(problems, fmt.Sprintf("scheduler %s: connection is %s", n.opts.SchedulerAddr, st))
		}
	}
	return problems
}

// serveReady is /readyz: 200 "ready" when nothing keeps the node from its work, else
// 503 with one line per problem.
func (n *Node) serveReady(w http.ResponseWriter, r *http.Request) {
	problems := n.ready(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(problems) == 0 {
		_, _ = w.Write([]byte("ready\n"))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = fmt.Fprintf(w, "not ready:\n- %s\n", strings.Join(problems, "\n- "))
}
