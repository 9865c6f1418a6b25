package status

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/kasync/kasync/delaystreams"
)

// GroupPrefix starts the name of every tailer group kasync names itself: a tailer's
// group defaults to "kasync.<tailer name>".
const GroupPrefix = "kasync."

// IngestTopicPrefix starts the name of a function's ingest topic, "kasync.fn.<name>".
const IngestTopicPrefix = "kasync.fn."

// LooksLikeKasync reports whether a consumer group found on the cluster is shown as a
// tailer when no config and no --group say which: its name starts with GroupPrefix, or
// it committed offsets of an ingest topic (IngestTopicPrefix). Groups of delay readers
// (named after their rung topic, in rungTopics) are shown as rungs instead, so they are
// not tailers here.
func LooksLikeKasync(group string, committedTopics []string, rungTopics map[string]bool) bool {
	if rungTopics[group] {
		return false
	}
	if strings.HasPrefix(group, GroupPrefix) {
		return true
	}
	return slices.ContainsFunc(committedTopics, func(t string) bool { return strings.HasPrefix(t, IngestTopicPrefix) })
}

// IngestSpec is what to report on for the ingest tailer of a function with submit:
// true, given its ingest topic (kasync.fn.<function>): a node names that tailer and its
// consumer group after the topic.
func IngestSpec(topic string) TailerSpec {
	return TailerSpec{Name: topic, Group: topic, Topic: topic, Ingest: true}
}

// IsIngest reports whether a consumer group found on the cluster is an ingest tailer's:
// named after an ingest topic (IngestTopicPrefix), as a node names it, or committing
// offsets of ingest topics only (committedTopics, nil when unknown).
func IsIngest(group string, committedTopics []string) bool {
	if strings.HasPrefix(group, IngestTopicPrefix) {
		return true
	}
	return len(committedTopics) > 0 &&
		!slices.ContainsFunc(committedTopics, func(t string) bool { return !strings.HasPrefix(t, IngestTopicPrefix) })
}

// FindRungs returns, sorted by delay, the topics among topics that are rung topics of
// prefix: named exactly as delaystreams.RungTopic names a rung ("kasync.delay.30s").
func FindRungs(prefix string, topics []string) []RungSpec {
	var out []RungSpec
	for _, t := range topics {
		rest, ok := strings.CutPrefix(t, prefix+".")
		if !ok {
			continue
		}
		d, err := time.ParseDuration(rest)
		if err != nil || d <= 0 || delaystreams.RungTopic(prefix, d) != t {
			continue
		}
		out = append(out, RungSpec{Topic: t, Delay: d})
	}
	slices.SortFunc(out, func(a, b RungSpec) int { return cmp.Compare(a.Delay, b.Delay) })
	return out
}
