package status

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafka"
)

// DefaultPeekTimeout bounds the reads of the records at committed offsets when
// Request.PeekTimeout is 0.
const DefaultPeekTimeout = 5 * time.Second

// ErrUnreachable is returned (wrapped) when the first request to the cluster fails:
// the brokers cannot be reached, or refused the client, within the context's deadline.
var ErrUnreachable = errors.New("cannot reach the cluster")

// UnknownGroupsError is returned when Request.Groups names groups the broker does not
// know. Known are the groups that look like kasync's (LooksLikeKasync), to suggest.
type UnknownGroupsError struct {
	Groups []string
	Known  []string
}

func (e *UnknownGroupsError) Error() string {
	msg := fmt.Sprintf("no consumer group %s on the cluster", strings.Join(e.Groups, ", "))
	if len(e.Known) > 0 {
		msg += "; the groups that look like kasync's are " + strings.Join(e.Known, ", ")
	} else {
		msg += "; no group there looks like kasync's"
	}
	return msg
}

// Request says what Collect reports on.
type Request struct {
	// Groups, when set, are the tailer groups to report on; each must exist. A group
	// that is a configured tailer's (in Tailers) is reported as that tailer.
	Groups []string
	// Tailers are the configured tailers, reported on when Groups is empty. With
	// neither, every group that LooksLikeKasync is.
	Tailers []TailerSpec
	// RungPrefix is the delay topic prefix (delay.topic_prefix).
	RungPrefix string
	// Rungs are the configured rungs; nil to find the rung topics of RungPrefix on the
	// cluster (FindRungs).
	Rungs []time.Duration
	// DeadLetterTopic is the dead-letter topic (dead_letter.topic).
	DeadLetterTopic string
	// PeekTimeout bounds reading the records at committed offsets, for ages and due
	// times. Default DefaultPeekTimeout.
	PeekTimeout time.Duration
}

// Collect reads r's facts from the cluster of cc with admin requests (ListTopics,
// ListGroups, DescribeGroups, OffsetFetch, ListOffsets) and one direct consumer that
// reads the record at the committed offset of each lagging partition. It changes
// nothing: no commits, no joins. ctx bounds everything; the peeks are also bounded by
// PeekTimeout, and a peek that does not finish in time leaves its fact unknown.
func Collect(ctx context.Context, cc kafka.ClientConfig, req Request) (*Report, error) {
	adm, err := kafka.NewAdmin(cc)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	defer adm.Close()
	c := &collector{adm: adm, req: req, brokers: strings.Join(cc.Brokers, ",")}
	report, err := c.collect(ctx)
	if err != nil {
		return nil, err
	}
	peekTimeout := req.PeekTimeout
	if peekTimeout <= 0 {
		peekTimeout = DefaultPeekTimeout
	}
	peekCtx, cancel := context.WithTimeout(ctx, peekTimeout)
	defer cancel()
	report.ApplyPeeks(Peek(peekCtx, cc, report.PeekTargets()))
	report.Brokers = slices.Clone(cc.Brokers)
	return report, nil
}

type collector struct {
	adm     *kadm.Client
	req     Request
	brokers string
}

func (c *collector) collect(ctx context.Context) (*Report, error) {
	details, err := c.adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("status: %w at %s: %w", ErrUnreachable, c.brokers, err)
	}
	report := &Report{Time: time.Now(), Source: SourceBrokers}
	exists := map[string]bool{}
	for name, d := range details {
		if d.Err == nil {
			exists[name] = true
		}
	}
	rungs := c.rungSpecs(details.Names())
	rungTopics := map[string]bool{}
	for _, r := range rungs {
		rungTopics[r.Topic] = true
	}

	listed, err := c.adm.ListGroups(ctx)
	if err != nil && len(listed) == 0 {
		return nil, fmt.Errorf("status: list consumer groups on %s: %w", c.brokers, err)
	}
	tailers, err := c.tailerSpecs(ctx, listed, rungTopics)
	if err != nil {
		return nil, err
	}

	var groupNames []string
	for _, t := range tailers {
		groupNames = append(groupNames, t.Group)
	}
	for _, r := range rungs {
		groupNames = append(groupNames, r.Topic)
	}
	groups, err := c.groups(ctx, listed, groupNames)
	if err != nil {
		return nil, err
	}

	// The logs of every topic shown that exists.
	var topics []string
	add := func(t string) {
		if exists[t] && !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	for _, t := range tailers {
		if t.Topic != "" {
			add(t.Topic)
		} else {
			for _, topic := range groups[t.Group].Topics() {
				add(topic)
			}
		}
	}
	for _, r := range rungs {
		add(r.Topic)
	}
	add(c.req.DeadLetterTopic)
	logs, err := c.logs(ctx, topics)
	if err != nil {
		return nil, err
	}

	for _, t := range tailers {
		report.Tailers = append(report.Tailers, NewTailer(t, groups[t.Group], logs))
	}
	for _, r := range rungs {
		report.Rungs = append(report.Rungs, NewRung(r, groups[r.Topic], logs))
	}
	report.DeadLetter = NewDeadLetter(c.req.DeadLetterTopic, logs)
	return report, nil
}

// rungSpecs are the configured rungs, or those found among topics.
func (c *collector) rungSpecs(topics []string) []RungSpec {
	if c.req.Rungs == nil {
		return FindRungs(c.req.RungPrefix, topics)
	}
	out := make([]RungSpec, len(c.req.Rungs))
	for i, d := range c.req.Rungs {
		out[i] = RungSpec{Topic: delaystreams.RungTopic(c.req.RungPrefix, d), Delay: d}
	}
	return out
}

// tailerSpecs are the tailers to report on: the named groups (which must exist), the
// configured tailers, or the groups on the cluster that look like kasync's.
func (c *collector) tailerSpecs(ctx context.Context, listed kadm.ListedGroups, rungTopics map[string]bool) ([]TailerSpec, error) {
	if len(c.req.Groups) == 0 && len(c.req.Tailers) > 0 {
		return c.req.Tailers, nil
	}
	var unknown []string
	for _, g := range c.req.Groups {
		if _, ok := listed[g]; !ok {
			unknown = append(unknown, g)
		}
	}
	if len(c.req.Groups) > 0 && len(unknown) == 0 {
		out := make([]TailerSpec, 0, len(c.req.Groups))
		for _, g := range c.req.Groups {
			spec := TailerSpec{Group: g, Ingest: IsIngest(g, nil)}
			if i := slices.IndexFunc(c.req.Tailers, func(t TailerSpec) bool { return t.Group == g }); i >= 0 {
				spec = c.req.Tailers[i]
			}
			out = append(out, spec)
		}
		return out, nil
	}
	// Find the groups that look like kasync's: to show, or to suggest.
	names := listed.Groups()
	fetched := c.adm.FetchManyOffsets(ctx, names...)
	var found []TailerSpec
	var foundNames []string
	for _, g := range names {
		var topics []string
		if f, ok := fetched[g]; ok && f.Err == nil {
			topics = f.Fetched.Partitions().Topics()
		}
		if LooksLikeKasync(g, topics, rungTopics) {
			found = append(found, TailerSpec{Group: g, Ingest: IsIngest(g, topics)})
			foundNames = append(foundNames, g)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("status: %w", &UnknownGroupsError{Groups: unknown, Known: foundNames})
	}
	return found, nil
}

// groups describes the named groups that exist and fetches their committed offsets.
func (c *collector) groups(ctx context.Context, listed kadm.ListedGroups, names []string) (map[string]Group, error) {
	out := make(map[string]Group, len(names))
	var existing []string
	for _, g := range names {
		if _, ok := listed[g]; ok && !slices.Contains(existing, g) {
			existing = append(existing, g)
			out[g] = Group{Exists: true}
		}
	}
	if len(existing) == 0 { // DescribeGroups of no group would describe them all
		return out, nil
	}
	described, err := c.adm.DescribeGroups(ctx, existing...)
	if err != nil && len(described) == 0 {
		return nil, fmt.Errorf("status: describe groups %s: %w", strings.Join(existing, ", "), err)
	}
	fetched := c.adm.FetchManyOffsets(ctx, existing...)
	for _, name := range existing {
		g := out[name]
		var errs []error
		switch d, ok := described[name]; {
		case ok && d.Err == nil:
			g.State, g.Members = d.State, len(d.Members)
			g.Assigned = d.AssignedPartitions().Topics()
		case ok:
			errs = append(errs, fmt.Errorf("describe: %w", d.Err))
		case err != nil:
			errs = append(errs, fmt.Errorf("describe: %w", err))
		default:
			errs = append(errs, errors.New("describe: the broker did not answer for this group"))
		}
		f := fetched[name]
		switch {
		case f.Err == nil:
			g.Committed = Offsets{}
			f.Fetched.Each(func(o kadm.OffsetResponse) {
				if o.Err == nil && o.At >= 0 {
					g.Committed.Set(o.Topic, o.Partition, o.At)
				}
			})
			if err := f.Fetched.Error(); err != nil {
				errs = append(errs, fmt.Errorf("committed offsets: %w", err))
			}
		case errors.Is(f.Err, kerr.GroupIDNotFound): // never committed
		default:
			errs = append(errs, fmt.Errorf("committed offsets: %w", f.Err))
		}
		g.Err = errors.Join(errs...)
		out[name] = g
	}
	return out, nil
}

// logs lists the start and end offsets of topics (which exist).
func (c *collector) logs(ctx context.Context, topics []string) (Logs, error) {
	logs := Logs{Start: Offsets{}, End: Offsets{}}
	if len(topics) == 0 { // listing no topic would list them all
		return logs, nil
	}
	for _, l := range []struct {
		what string
		list func(context.Context, ...string) (kadm.ListedOffsets, error)
		into Offsets
	}{
		{"start", c.adm.ListStartOffsets, logs.Start},
		{"end", c.adm.ListEndOffsets, logs.End},
	} {
		listed, err := l.list(ctx, topics...)
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			return logs, fmt.Errorf("status: %s offsets of %s: %w", l.what, strings.Join(topics, ", "), err)
		}
		listed.Each(func(o kadm.ListedOffset) { l.into.Set(o.Topic, o.Partition, o.Offset) })
	}
	return logs, nil
}
