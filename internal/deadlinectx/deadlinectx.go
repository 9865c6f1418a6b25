package deadlinectx

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Context is a context with a deadline, built lazily; see the package doc.
type Context struct {
	parent   context.Context
	deadline time.Time // the earlier of the parent's deadline and the one given

	mu   sync.Mutex              // serialises building real
	real atomic.Pointer[realCtx] // built by the first Done; nil before
	// ended: the error Err first reported, or Release fixed, before real was built.
	// Once set it never changes, so Err never flips between two errors.
	ended atomic.Pointer[errorBox]
}

type realCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

type errorBox struct{ err error }

// New returns a context that is done at deadline, when parent is, or at Release.
func New(parent context.Context, deadline time.Time) *Context {
	if pd, ok := parent.Deadline(); ok && pd.Before(deadline) {
		deadline = pd
	}
	return &Context{parent: parent, deadline: deadline}
}

// Deadline returns the context's deadline; it always has one.
func (c *Context) Deadline() (time.Time, bool) { return c.deadline, true }

// Done builds the real context on first use and returns its channel.
func (c *Context) Done() <-chan struct{} { return c.build().ctx.Done() }

// Err reports why the context is done, or nil.
func (c *Context) Err() error {
	if b := c.ended.Load(); b != nil {
		return b.err
	}
	if r := c.real.Load(); r != nil {
		return r.ctx.Err()
	}
	if c.lazyErr() == nil {
		return nil
	}
	return c.end()
}

// lazyErr is the error the context has now, judged from its parent and the clock.
func (c *Context) lazyErr() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// end fixes the context's error, if nothing did before, to what it is done with now,
// and returns it (nil while it is live). It takes no lock: build, which does, looks
// at ended again after publishing real, so between the two a real context is never
// left live after its error was fixed.
func (c *Context) end() error {
	if b := c.ended.Load(); b != nil {
		return b.err
	}
	if r := c.real.Load(); r != nil {
		return r.ctx.Err()
	}
	err := c.lazyErr()
	if err == nil {
		return nil
	}
	if !c.ended.CompareAndSwap(nil, box(err)) {
		return c.ended.Load().err
	}
	if r := c.real.Load(); r != nil { // built meanwhile, seeing no error yet
		r.cancel()
	}
	return err
}

var (
	canceled         = &errorBox{err: context.Canceled}
	deadlineExceeded = &errorBox{err: context.DeadlineExceeded}
)

// box boxes err, sharing one box for each of the two errors contexts end with.
func box(err error) *errorBox {
	if err == context.Canceled { //nolint:errorlint // identity: only the bare error shares a box
		return canceled
	}
	if err == context.DeadlineExceeded { //nolint:errorlint // as above
		return deadlineExceeded
	}
	return &errorBox{err: err}
}

// Value returns the parent's value for key. Once the context is done, it answers
// from the real context, so context.Cause reports this context's own cause.
func (c *Context) Value(key any) any {
	if r := c.real.Load(); r != nil {
		return r.ctx.Value(key)
	}
	if c.Err() != nil { // fixes the error before build reads it
		return c.build().ctx.Value(key)
	}
	return c.parent.Value(key)
}

// Release ends the context: from now on it is done, with the error it reported
// before if it reported one (by Err, Value or Done), else with context.Canceled. It
// reads no clock, so a deadline that passed unnoticed gives Canceled too; call Err
// first to have DeadlineExceeded then.
func (c *Context) Release() {
	if c.ended.Load() != nil {
		return
	}
	if r := c.real.Load(); r != nil {
		r.cancel()
		return
	}
	if c.ended.CompareAndSwap(nil, canceled) {
		if r := c.real.Load(); r != nil { // built meanwhile, seeing no error yet
			r.cancel()
		}
	}
}

// build returns the real context, making it on first use: a context.WithDeadline of
// the parent while the context is live, or, once its error is fixed, a context done
// with that very error (over the parent's values, not its cancellation, so a parent
// cancelled since cannot change it).
func (c *Context) build() *realCtx {
	if r := c.real.Load(); r != nil {
		return r
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.real.Load(); r != nil {
		return r
	}
	r := &realCtx{}
	if b := c.ended.Load(); b != nil {
		base := context.WithoutCancel(c.parent)
		if errors.Is(b.err, context.DeadlineExceeded) {
			r.ctx, r.cancel = context.WithDeadline(base, c.deadline)
		} else {
			r.ctx, r.cancel = context.WithCancel(base)
			r.cancel()
		}
	} else {
		r.ctx, r.cancel = context.WithDeadline(c.parent, c.deadline)
	}
	c.real.Store(r)
	if c.ended.Load() != nil { // end fixed an error meanwhile: the real context ends too
		r.cancel()
	}
	return r
}
