package dlq

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// LedgerSuffix makes the ledger topic's name from the dead-letter topic's.
const LedgerSuffix = ".redriven"

// LedgerTopic is the compacted topic that records what was redriven from deadLetter.
func LedgerTopic(deadLetter string) string { return deadLetter + LedgerSuffix }

// Mark is the value of a ledger record: where the redriven copy went, when, and which
// incarnation of the dead-letter topic the key's position belongs to.
type Mark struct {
	To string `json:"to"` // <topic>/<partition>/<offset> of the redriven copy
	At int64  `json:"at"` // unix milliseconds
	// DeadLetterTopicID is the dead-letter topic's ID (base64), or empty when the broker
	// does not report one. A position only means something within one incarnation of
	// the topic: deleted and created again, it starts at offset 0 again.
	DeadLetterTopicID string `json:"dead_letter_topic_id,omitempty"`
}

// MarkRecord is the ledger record saying that the dead letter at p was redriven as m.
func MarkRecord(ledgerTopic string, p Pos, m Mark) *kgo.Record {
	v, err := json.Marshal(m)
	if err != nil { // a struct of strings and an int always marshals
		panic(fmt.Sprintf("dlq: marshal mark: %v", err))
	}
	return &kgo.Record{Topic: ledgerTopic, Key: []byte(p.String()), Value: v}
}

// Ledger is the set of dead-letter positions already redriven, built by applying the
// ledger topic's records in offset order, as compaction would leave them: the last
// record of a key wins, and a tombstone (nil value) removes the key, so an operator who
// wants a record redriven again deletes its mark.
type Ledger struct {
	topicID string
	done    map[Pos]Mark
	stale   int
}

// NewLedger returns an empty ledger for the dead-letter topic with ID topicID (empty
// when the broker reports none: marks are then taken whatever their ID).
func NewLedger(topicID string) *Ledger {
	return &Ledger{topicID: topicID, done: map[Pos]Mark{}}
}

// Apply adds one ledger record. A key that is not a position or a value that is not a
// Mark is an error and changes nothing; a mark of another incarnation of the dead-letter
// topic is ignored and counted in Stale.
func (l *Ledger) Apply(key, value []byte) error {
	p, err := ParsePos(string(key))
	if err != nil {
		return fmt.Errorf("dlq: ledger key %w", err)
	}
	if value == nil {
		delete(l.done, p)
		return nil
	}
	var m Mark
	if err := json.Unmarshal(value, &m); err != nil {
		return fmt.Errorf("dlq: ledger value of %s: %w", p, err)
	}
	if l.topicID != "" && m.DeadLetterTopicID != "" && m.DeadLetterTopicID != l.topicID {
		l.stale++
		return nil
	}
	l.done[p] = m
	return nil
}

// Add records p as redriven as m.
func (l *Ledger) Add(p Pos, m Mark) { l.done[p] = m }

// Get returns the mark of p, if p was redriven. A nil Ledger holds nothing.
func (l *Ledger) Get(p Pos) (Mark, bool) {
	if l == nil {
		return Mark{}, false
	}
	m, ok := l.done[p]
	return m, ok
}

// Has reports whether p was redriven. A nil Ledger holds nothing.
func (l *Ledger) Has(p Pos) bool {
	_, ok := l.Get(p)
	return ok
}

// Len is the number of positions redriven.
func (l *Ledger) Len() int { return len(l.done) }

// Stale is the number of marks ignored because they belong to another incarnation of
// the dead-letter topic.
func (l *Ledger) Stale() int { return l.stale }

// NewMark is the mark of a copy written at to (<topic>/<partition>/<offset>) at time at.
func (l *Ledger) NewMark(to string, at time.Time) Mark {
	return Mark{To: to, At: at.UnixMilli(), DeadLetterTopicID: l.topicID}
}
