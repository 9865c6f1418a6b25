package httpfn

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kasync/kasync/scheduler"
)

// BenchmarkExecute measures one attempt against a local server answering 204:
// building the CloudEvent, one keep-alive round trip, and classifying.
func BenchmarkExecute(b *testing.B) {
	srv := startServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	e := newExecutor(b, Config{URL: srv.URL + "/charge", MaxConns: 1})
	w := &scheduler.Workload{
		ID: "orders/3/42", Key: []byte("customer-7"), Payload: make([]byte, 256), Attempt: 1,
		Created: time.Now(), Source: "kafka://orders",
		Headers: []scheduler.Header{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
		},
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if out := e.Execute(ctx, w, 5*time.Second); out.Kind != scheduler.OutcomeSuccess {
			b.Fatal(out.Err)
		}
	}
}
