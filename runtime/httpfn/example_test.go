package httpfn_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/kasync/kasync/runtime/httpfn"
	"github.com/kasync/kasync/scheduler"
)

// An HTTP function that is overloaded answers 503 with a Retry-After; the attempt
// is retriable, and the scheduler shrinks the function's concurrency.
func ExampleExecutor() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(r.Header.Get("ce-type"), r.Header.Get("ce-id"), r.Header.Get("ce-source"))
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	e, err := httpfn.New(httpfn.Config{Function: "charge", URL: srv.URL + "/charge"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()

	w := &scheduler.Workload{ID: "orders/0/7", Payload: []byte(`{}`), Attempt: 1, Source: "kafka://orders"}
	out := e.Execute(context.Background(), w, 5*time.Second)
	fmt.Println(out.Kind, out.Reason, out.RetryAfter)
	// Output:
	// kasync.charge orders/0/7 kafka://orders
	// retriable overloaded 30s
}
