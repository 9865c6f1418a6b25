package delaystreams

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/scheduler"
)

// DefaultMaxDelay caps a retry's delay (RetryAfter, backoff) and a due time read from a
// header, unless RouterConfig.MaxDelay says otherwise.
const DefaultMaxDelay = 7 * 24 * time.Hour

// Dead-letter reasons the router decides itself; a fatal outcome's own Reason is used
// as is.
const (
	ReasonExhausted       = "exhausted"
	ReasonFatal           = "fatal"
	ReasonUnknownFunction = string(scheduler.ReasonUnknownFunction)
)

// Failure is one failed attempt, as a reader of a source or a rung hands it over.
type Failure struct {
	Record       *kgo.Record       // the record as read (source record or rung record)
	Function     string            //
	Attempt      int               // the attempt that just failed (1-based)
	Outcome      scheduler.Outcome // its outcome (Kind retriable or fatal)
	FirstFailure time.Time         // zero → now
	// Origin of the source record. For a source record it is the record's own
	// topic/partition/offset; a zero Origin (empty Topic) means exactly that.
	Origin Origin
	// Priority of the workload, written as kasync-priority so that its retries keep it.
	Priority int32
}

// origin is f.Origin, or the record's own position when f.Origin is zero.
func (f *Failure) origin() Origin {
	if f.Origin.Topic != "" || f.Record == nil {
		return f.Origin
	}
	return Origin{Topic: f.Record.Topic, Partition: f.Record.Partition, Offset: f.Record.Offset}
}

// Decision is where a failure (or a hop) goes.
type Decision struct {
	DeadLetter bool
	// Reason, for dead letters: "exhausted", "unknown-function", "fatal", or the fatal
	// outcome's own Reason (too-large, invalid, invalid-headers, ...).
	Reason string
	Topic  string    // where the record goes; "" when nothing is produced (Hop: due already)
	Rung   int       // the rung index; -1 for dead letters and for "due already" (Hop)
	Due    time.Time // absolute due time, rounded up to the millisecond; zero for dead letters
}

// RouterConfig configures a Router.
type RouterConfig struct {
	Ladder      *Ladder                // required
	TopicPrefix string                 // rung topics: RungTopic(TopicPrefix, rung); required
	DeadLetter  string                 // the dead-letter topic; required
	Policies    map[string]RetryPolicy // per function; a function without one is unknown
	// MaxDelay caps RetryAfter, backoff and due times (default DefaultMaxDelay, 7 days).
	// Give the delay reader the same bound as ParseMeta's maxAhead (Router.MaxDelay).
	MaxDelay time.Duration
	Now      func() time.Time // default time.Now
	// Rand returns a number in [0, 1) for jitter; default math/rand/v2's Float64. It
	// must be safe for concurrent use when the Router is.
	Rand func() float64
	// Registerer, when non-nil, registers kasync_dead_letter_total{function,reason}
	// (counted by Produce once the broker acknowledged a dead letter) and
	// kasync_delay_lateness_seconds{rung} (observed by the rung readers, a series per
	// rung from the start).
	Registerer prometheus.Registerer
}

// Router turns failed attempts into durable records on a rung or in the dead letter.
// Decide, Record and Hop are pure given Now and Rand; Route and Produce produce. A Router
// is safe for concurrent use (when its Now and Rand are).
type Router struct {
	cl         *kgo.Client
	ladder     *Ladder
	rungTopics []string // by rung index
	deadLetter string
	policies   map[string]RetryPolicy
	maxDelay   time.Duration
	now        func() time.Time
	rand       func() float64
	metrics    *routerMetrics // nil without RouterConfig.Registerer
}

// NewRouter checks cfg and returns a Router that produces with cl, which must be a
// durable producer: acks from all in-sync replicas and idempotence, franz-go's defaults
// (internal/kafka.ProducerOpts). The caller owns cl. Every problem of cfg is reported
// at once, each naming the field and the fix. With a Registerer, a registration error
// (such as prometheus.AlreadyRegisteredError) is returned wrapped.
func NewRouter(cl *kgo.Client, cfg RouterConfig) (*Router, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("delaystreams: router: "+format, args...))
	}
	if cl == nil {
		bad("nil client; give a durable producer (internal/kafka.ProducerOpts)")
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	if cfg.MaxDelay < 0 {
		bad("MaxDelay %s is negative; use 0 for the default (%s) or a positive duration", cfg.MaxDelay, DefaultMaxDelay)
	} else if cfg.Ladder != nil && cfg.MaxDelay <= cfg.Ladder.Tolerance() {
		// A due time clamped to now+MaxDelay must take a rung; held in place it would
		// move ahead with the clock and never come.
		bad("MaxDelay %s is not above the ladder's tolerance (%s); use a longer MaxDelay", cfg.MaxDelay, cfg.Ladder.Tolerance())
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	r := &Router{cl: cl, ladder: cfg.Ladder, deadLetter: cfg.DeadLetter, maxDelay: cfg.MaxDelay, now: cfg.Now, rand: cfg.Rand}

	switch {
	case cfg.Ladder == nil:
		bad("Ladder is nil; build one with NewLadder from delay.rungs")
	case cfg.TopicPrefix == "":
		bad("TopicPrefix is empty; set delay.topic_prefix, e.g. kasync.delay")
	default:
		for i := range cfg.Ladder.Len() {
			topic := RungTopic(cfg.TopicPrefix, cfg.Ladder.Rung(i))
			if msg := topicNameProblem(topic); msg != "" {
				bad("rung %d: topic %q %s; fix delay.topic_prefix", i, topic, msg)
			}
			r.rungTopics = append(r.rungTopics, topic)
		}
	}
	if cfg.DeadLetter == "" {
		bad("DeadLetter is empty; set dead_letter.topic, e.g. kasync.dead-letter")
	} else if msg := topicNameProblem(cfg.DeadLetter); msg != "" {
		bad("DeadLetter %q %s; fix dead_letter.topic", cfg.DeadLetter, msg)
	}

	r.policies = make(map[string]RetryPolicy, len(cfg.Policies))
	names := make([]string, 0, len(cfg.Policies))
	for name := range cfg.Policies {
		names = append(names, name)
	}
	sort.Strings(names) // stable error order
	for _, name := range names {
		p := cfg.Policies[name]
		if err := p.Validate(); err != nil {
			bad("Policies[%q] (functions[%s].retry): %w", name, name, err)
			continue
		}
		p.Backoff = append([]time.Duration(nil), p.Backoff...)
		r.policies[name] = p
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Registerer != nil {
		m, err := newRouterMetrics(cfg.Registerer, cfg.Ladder)
		if err != nil {
			return nil, err
		}
		r.metrics = m
	}
	return r, nil
}

// MaxDelay is the cap on delays and due times; pass it to ParseMeta as maxAhead.
func (r *Router) MaxDelay() time.Duration { return r.maxDelay }

// RungTopics returns the rung topics, by rung index.
func (r *Router) RungTopics() []string { return append([]string(nil), r.rungTopics...) }

// Decide chooses where f goes. It is pure given Now and Rand:
//
//   - fatal → dead letter, reason = the outcome's Reason, or "fatal" when it has none;
//   - no policy for f.Function → dead letter "unknown-function";
//   - the policy is exhausted at f.Attempt (clamped with ClampAttempt) → dead letter
//     "exhausted";
//   - otherwise due = now + policy.Delay(attempt, RetryAfter, rand), the delay capped
//     at MaxDelay and due rounded up to the millisecond, on rung Ladder.Pick(due − now).
//     When the delay is within the ladder's tolerance, the smallest rung anyway: a retry
//     always leaves the source partition (DESIGN.md, "never clogged"), and the delay
//     reader holds it until due.
//
// Any kind but fatal (also a zero or success kind, a caller's bug) is handled as
// retriable: another attempt is never a loss.
func (r *Router) Decide(f *Failure) Decision {
	dead := func(reason string) Decision {
		return Decision{DeadLetter: true, Reason: reason, Topic: r.deadLetter, Rung: -1}
	}
	if f.Outcome.Kind == scheduler.OutcomeFatal {
		if f.Outcome.Reason == "" {
			return dead(ReasonFatal)
		}
		return dead(string(f.Outcome.Reason))
	}
	p, ok := r.policies[f.Function]
	if !ok {
		return dead(ReasonUnknownFunction)
	}
	attempt := ClampAttempt(int64(f.Attempt))
	if p.Exhausted(attempt) {
		return dead(ReasonExhausted)
	}
	now := r.now()
	retryAfter := min(f.Outcome.RetryAfter, r.maxDelay)
	delay := min(p.Delay(attempt, retryAfter, r.rand()), r.maxDelay)
	due := ceilMilli(now.Add(delay))
	rung, ok := r.ladder.Pick(due.Sub(now))
	if !ok {
		rung = 0
	}
	return Decision{Topic: r.rungTopics[rung], Rung: rung, Due: due}
}

// Record builds the record for decision d of f: the original key, value and headers
// less any kasync-* ones, plus kasync-function, kasync-attempt (the attempt that
// failed, clamped), kasync-due (unix ms; rung records only), kasync-origin,
// kasync-first-failure (now when f.FirstFailure is zero), kasync-error (the outcome's
// Err, valid UTF-8, at most MaxErrorBytes) and, for dead letters, kasync-reason.
func (r *Router) Record(f *Failure, d Decision) *kgo.Record {
	first := f.FirstFailure
	if first.IsZero() {
		first = r.now()
	}
	h := outHeaders{
		Function:     f.Function,
		Attempt:      ClampAttempt(int64(f.Attempt)),
		Origin:       f.origin(),
		FirstFailure: first,
		Err:          f.Outcome.Err,
		DeadLetter:   d.DeadLetter,
		Reason:       d.Reason,
		Priority:     f.Priority,
	}
	if !d.DeadLetter {
		h.Due = ceilMilli(d.Due)
	}
	return kasyncRecord(d.Topic, f.Record, h)
}

// Hop moves a rung record that a delay reader found ready on its rung: from m (its
// parsed headers) and now, the due time is clamped (ClampDue with MaxDelay) and the
// ladder picks the next rung for the time left. It returns the record for that rung,
// with the record's key, value and other headers and kasync headers rewritten from m
// (so a forged value, once clamped, stays clamped); due, attempt, origin, first failure
// and error travel unchanged.
//
// When the time left is within the ladder's tolerance (or the due time has passed),
// there is no next rung: Hop returns a nil record and a Decision with Rung −1, no Topic
// and the due time; the reader holds the record until then and pushes it to the
// scheduler with attempt m.Attempt+1.
func (r *Router) Hop(rec *kgo.Record, m Meta) (*kgo.Record, Decision) {
	return r.hopAt(rec, m, r.now())
}

// hopAt is Hop at now.
func (r *Router) hopAt(rec *kgo.Record, m Meta, now time.Time) (*kgo.Record, Decision) {
	due := ceilMilli(ClampDue(m.Due, now, r.maxDelay))
	rung, ok := r.ladder.Pick(due.Sub(now))
	if !ok {
		return nil, Decision{Rung: -1, Due: due}
	}
	first := m.FirstFailure
	if first.IsZero() {
		first = now
	}
	d := Decision{Topic: r.rungTopics[rung], Rung: rung, Due: due}
	return kasyncRecord(d.Topic, rec, outHeaders{
		Function:     m.Function,
		Attempt:      ClampAttempt(int64(m.Attempt)),
		Due:          due,
		Origin:       m.Origin,
		FirstFailure: first,
		Err:          m.LastError,
		Priority:     m.Priority,
		Scheduled:    m.Scheduled,
	}), d
}

// Route decides and produces every failure and waits for the broker's
// acknowledgements. errs[i] is nil only once failure i is durable (acks=all from the
// idempotent producer); then, and only then, may the caller mark its offset done. A
// failure with an error may or may not have been written: the caller retries it
// (Route never drops one; a retry may duplicate a record, never lose one).
func (r *Router) Route(ctx context.Context, fs []Failure) (ds []Decision, errs []error) {
	ds = make([]Decision, len(fs))
	errs = make([]error, len(fs))
	recs := make([]*kgo.Record, 0, len(fs))
	idx := make([]int, 0, len(fs))
	for i := range fs {
		f := &fs[i]
		if f.Record == nil {
			ds[i] = Decision{Rung: -1}
			errs[i] = fmt.Errorf("delaystreams: route: failure %d (function %q): nil Record", i, f.Function)
			continue
		}
		ds[i] = r.Decide(f)
		recs = append(recs, r.Record(f, ds[i]))
		idx = append(idx, i)
	}
	for j, err := range r.Produce(ctx, recs) {
		if err != nil {
			i := idx[j]
			errs[i] = fmt.Errorf("delaystreams: route %s (function %q) to %s: %w", fs[i].origin(), fs[i].Function, ds[i].Topic, err)
		}
	}
	return ds, errs
}

// Produce produces recs (built by Record or Hop) and waits for the broker's
// acknowledgements; errs[i] is nil only once recs[i], or what it became, is durable.
//
// A record the broker refuses as too large (kasync's headers can push a record that fit
// its source topic over a rung's or the dead-letter topic's max.message.bytes) is not
// left failing for ever, which would hold its source partition's checkpoint: a rung
// record goes to the dead letter instead, with reason too-large; a dead letter is sent
// again without its value, then also without the source record's own headers, with
// kasync-dropped saying what was left out. The full record stays in the source topic at
// kasync-origin. Only a dead letter too large even then keeps its error.
func (r *Router) Produce(ctx context.Context, recs []*kgo.Record) []error {
	errs := r.produce(ctx, recs)
	type retry struct {
		i     int
		base  *kgo.Record // the dead letter in full
		stage int         // 1: full, 2: without value, 3: without value and headers
	}
	var again []retry
	for i, err := range errs {
		if err == nil {
			r.acked(recs[i])
		}
		if errors.Is(err, kerr.MessageTooLarge) {
			if recs[i].Topic == r.deadLetter {
				again = append(again, retry{i: i, base: recs[i], stage: 2})
			} else {
				again = append(again, retry{i: i, base: r.tooLargeLetter(recs[i], err), stage: 1})
			}
		}
	}
	for len(again) > 0 {
		out := make([]*kgo.Record, len(again))
		for j, a := range again {
			switch a.stage {
			case 1:
				out[j] = a.base
			case 2:
				out[j] = trim(a.base, droppedValue)
			default:
				out[j] = trim(a.base, droppedValueAndHeaders)
			}
		}
		next := again[:0]
		for j, err := range r.produce(ctx, out) {
			a := again[j]
			errs[a.i] = err
			if err == nil {
				r.acked(out[j])
			}
			if errors.Is(err, kerr.MessageTooLarge) && a.stage < 3 {
				a.stage++
				next = append(next, a)
			}
		}
		again = next
	}
	return errs
}

// tooLargeLetter turns a rung record the broker refused as too large into its dead
// letter: the same key, value and headers, less kasync-due, plus kasync-reason
// too-large and an error that says so.
func (r *Router) tooLargeLetter(rec *kgo.Record, cause error) *kgo.Record {
	out := &kgo.Record{Topic: r.deadLetter, Key: rec.Key, Value: rec.Value,
		Headers: make([]kgo.RecordHeader, 0, len(rec.Headers)+1)}
	last := ""
	for _, h := range rec.Headers {
		switch h.Key {
		case HeaderDue, HeaderReason, HeaderDropped:
		case HeaderError:
			last = string(h.Value)
		default:
			out.Headers = append(out.Headers, h)
		}
	}
	msg := fmt.Sprintf("too large for delay rung topic %s (%v); the last error was: %s", rec.Topic, cause, last)
	out.Headers = append(out.Headers,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(cleanError(msg))},
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(scheduler.ReasonTooLarge)})
	return out
}

func (r *Router) produce(ctx context.Context, recs []*kgo.Record) []error {
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, rec := range recs {
		r.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	wg.Wait()
	return errs
}

// String describes d for logs.
func (d Decision) String() string {
	switch {
	case d.DeadLetter:
		return fmt.Sprintf("dead letter %s (%s)", d.Topic, d.Reason)
	case d.Rung < 0:
		return fmt.Sprintf("due at %d, no rung", d.Due.UnixMilli())
	default:
		return fmt.Sprintf("rung %d %s, due at %d", d.Rung, d.Topic, d.Due.UnixMilli())
	}
}
