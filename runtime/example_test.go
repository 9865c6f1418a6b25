package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	kruntime "github.com/kasync/kasync/runtime"
	"github.com/kasync/kasync/scheduler"
)

var errBankBusy = errors.New("bank is rate limiting us")

// A function tells kasync what to do next by the error it returns: nil is done,
// Fatal dead-letters the event at once, RetryAfter asks for a retry no sooner than
// a given delay, and any other error is retried through the delay ladder.
func ExampleRegistry() {
	reg := kruntime.NewRegistry()
	reg.MustRegister("charge", func(ctx context.Context, t *kruntime.Task) error {
		var order struct {
			Cents int `json:"cents"`
		}
		if err := json.Unmarshal(t.Payload, &order); err != nil {
			return kruntime.Fatal(fmt.Errorf("order %s: %w", t.ID, err)) // no retry fixes bad JSON
		}
		if order.Cents > 100_000 {
			return kruntime.RetryAfter(time.Minute, errBankBusy)
		}
		return nil
	})

	for _, payload := range []string{`{"cents": 500}`, `{"cents": 500000}`, `not json`} {
		w := &scheduler.Workload{ID: "orders/0/1", Function: "charge", Payload: []byte(payload), Attempt: 1}
		o := reg.Execute(context.Background(), w, 30*time.Second)
		fmt.Printf("%s reason=%q retry_after=%v\n", o.Kind, o.Reason, o.RetryAfter)
	}
	// Output:
	// success reason="" retry_after=0s
	// retriable reason="error" retry_after=1m0s
	// fatal reason="fatal" retry_after=0s
}
