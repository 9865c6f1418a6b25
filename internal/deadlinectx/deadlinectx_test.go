package deadlinectx

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type key struct{}

// pair is a deadlinectx.Context and the context.WithDeadline it stands for, over
// the same parent.
type pair struct {
	lazy       *Context
	want       context.Context
	wantCancel context.CancelFunc
	parent     context.CancelFunc
}

func newPair(t *testing.T, d time.Duration) pair {
	t.Helper()
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	deadline := time.Now().Add(d)
	want, cancel := context.WithDeadline(parent, deadline)
	p := pair{lazy: New(parent, deadline), want: want, wantCancel: cancel, parent: cancelParent}
	t.Cleanup(func() { p.lazy.Release(); cancel(); cancelParent() })
	return p
}

// same checks that the two contexts report the same state, and that a done one
// stays done with the same error.
func (p pair) same(t *testing.T, doneWanted bool) {
	t.Helper()
	wd, _ := p.want.Deadline()
	ld, ok := p.lazy.Deadline()
	require.True(t, ok)
	require.Equal(t, wd, ld)
	require.Equal(t, "v", p.lazy.Value(key{}))
	if !doneWanted {
		require.NoError(t, p.want.Err())
		require.NoError(t, p.lazy.Err())
		require.NoError(t, context.Cause(p.lazy))
		return
	}
	<-p.want.Done()
	require.Error(t, p.want.Err())
	require.Equal(t, p.want.Err(), p.lazy.Err())
	require.Equal(t, context.Cause(p.want), context.Cause(p.lazy))
	select {
	case <-p.lazy.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not close")
	}
	require.Equal(t, p.want.Err(), p.lazy.Err(), "Err after Done")
	require.Equal(t, context.Cause(p.want), context.Cause(p.lazy), "Cause after Done")
}

func TestLikeWithDeadline(t *testing.T) {
	t.Parallel()
	const soon = 20 * time.Millisecond
	cases := []struct {
		name string
		// run acts on the pair; lookFirst calls Done before (building the real context).
		d    time.Duration
		act  func(p pair)
		done bool
	}{
		{name: "live", d: time.Hour, act: func(pair) {}},
		{name: "deadline passed", d: soon, act: func(pair) { time.Sleep(2 * soon) }, done: true},
		{name: "parent cancelled", d: time.Hour, act: func(p pair) { p.parent() }, done: true},
		{name: "released", d: time.Hour, act: func(p pair) { p.lazy.Release(); p.wantCancel() }, done: true},
		{name: "released after the deadline, looked at first", d: soon, act: func(p pair) {
			time.Sleep(2 * soon)
			_ = p.lazy.Err()
			p.lazy.Release()
			p.wantCancel()
		}, done: true},
		{name: "parent cancelled after release", d: time.Hour, act: func(p pair) {
			p.lazy.Release()
			p.wantCancel()
			p.parent()
		}, done: true},
	}
	for _, c := range cases {
		for _, lookFirst := range []bool{false, true} {
			name := c.name
			if lookFirst {
				name += "/Done before"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				p := newPair(t, c.d)
				if lookFirst {
					_ = p.lazy.Done()
				}
				c.act(p)
				p.same(t, c.done)
			})
		}
	}
}

// Release reads no clock: a deadline that passed unnoticed ends as Canceled, for good.
func TestReleaseAfterAnUnnoticedDeadline(t *testing.T) {
	t.Parallel()
	c := New(context.Background(), time.Now().Add(-time.Second))
	c.Release()
	require.ErrorIs(t, c.Err(), context.Canceled)
	<-c.Done()
	require.ErrorIs(t, c.Err(), context.Canceled)
	require.ErrorIs(t, context.Cause(c), context.Canceled)
}

func TestParentDeadlineEarlier(t *testing.T) {
	t.Parallel()
	early := time.Now().Add(time.Minute)
	parent, cancel := context.WithDeadline(context.Background(), early)
	defer cancel()
	c := New(parent, early.Add(time.Hour))
	defer c.Release()
	d, _ := c.Deadline()
	require.Equal(t, early, d)
}

func TestDoneClosesAtDeadline(t *testing.T) {
	t.Parallel()
	c := New(context.Background(), time.Now().Add(20*time.Millisecond))
	defer c.Release()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not close at the deadline")
	}
	require.ErrorIs(t, c.Err(), context.DeadlineExceeded)
}

func TestDoneClosesWithParent(t *testing.T) {
	t.Parallel()
	parent, cancel := context.WithCancel(context.Background())
	c := New(parent, time.Now().Add(time.Hour))
	defer c.Release()
	done := c.Done()
	cancel()
	<-done
	require.ErrorIs(t, c.Err(), context.Canceled)
}

// A context derived from the lazy one is cancelled with it, by the context package's
// own bookkeeping: no goroutine waits for it.
func TestChildrenCancelledWithoutAGoroutine(t *testing.T) {
	c := New(context.Background(), time.Now().Add(time.Hour))
	before := runtime.NumGoroutine()
	children := make([]context.Context, 50)
	cancels := make([]context.CancelFunc, 50)
	for i := range children {
		children[i], cancels[i] = context.WithCancel(c)
	}
	require.Equal(t, before, runtime.NumGoroutine(), "deriving a context started goroutines")
	c.Release()
	for _, ch := range children {
		<-ch.Done()
		require.ErrorIs(t, ch.Err(), context.Canceled)
	}
	for _, cancel := range cancels {
		cancel()
	}
}

// Done, Err, Value and Release from many goroutines at once agree on one error.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	for range 50 {
		parent, cancel := context.WithCancel(context.Background())
		c := New(parent, time.Now().Add(time.Millisecond))
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range 8 {
			wg.Go(func() {
				switch i % 4 {
				case 0:
					<-c.Done()
				case 1:
					c.Release()
				case 2:
					cancel()
				default:
					_ = c.Value(key{})
					for c.Err() == nil {
						runtime.Gosched()
					}
				}
				errs[i] = c.Err()
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.Error(t, err)
			require.Equal(t, errs[0], err, "Err changed")
			require.True(t, errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
		}
		<-c.Done()
		require.Equal(t, errs[0], c.Err())
		cancel()
	}
}

// BenchmarkUnused is an attempt that never looks at its ctx: New and Release,
// against context.WithDeadline and its cancel.
func BenchmarkUnused(b *testing.B) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Run("deadlinectx", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := New(parent, time.Now().Add(time.Minute))
			c.Release()
		}
	})
	b.Run("context.WithDeadline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, cancel := context.WithDeadline(parent, time.Now().Add(time.Minute))
			cancel()
		}
	})
}
