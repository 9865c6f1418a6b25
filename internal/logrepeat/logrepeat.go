package logrepeat

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is the least time between two lines of a key when Interval is zero.
const DefaultInterval = 30 * time.Second

// MaxKeys bounds the keys a Limiter tracks.
const MaxKeys = 1000

// SuppressedKey is the attribute that counts the events of a key not logged since its
// previous line.
const SuppressedKey = "suppressed"

// Limiter rate-limits log lines by key. The zero value is ready to use; it is safe
// for concurrent use and must not be copied after first use.
type Limiter struct {
	// Interval is the least time between two lines of one key; zero means
	// DefaultInterval.
	Interval time.Duration

	mu   sync.Mutex
	keys map[string]*slot
}

// slot is one key's state: when its latest line was written, and the events since,
// with the latest of them to write at Flush.
type slot struct {
	logged     time.Time
	suppressed int
	log        *slog.Logger
	level      slog.Level
	msg        string
	args       []any
}

// Log writes msg with args at level to log, with the attribute "suppressed" set to
// the events of key not logged since its previous line, unless a line of key was
// written less than Interval ago: then it only counts the event. It reports whether
// it wrote a line.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, key, msg string, args ...any) bool {
	return l.logAt(time.Now(), log, level, key, msg, args...)
}

func (l *Limiter) logAt(now time.Time, log *slog.Logger, level slog.Level, key, msg string, args ...any) bool {
	ctx := context.Background()
	if !log.Enabled(ctx, level) {
		return false
	}
	l.mu.Lock()
	s := l.keys[key]
	if s == nil {
		if len(l.keys) >= MaxKeys {
			l.flushLocked()
			clear(l.keys)
		}
		if l.keys == nil {
			l.keys = make(map[string]*slot)
		}
		s = &slot{}
		l.keys[key] = s
	} else if now.Sub(s.logged) < l.interval() {
		s.suppressed++
		s.log, s.level, s.msg, s.args = log, level, msg, args
		l.mu.Unlock()
		return false
	}
	suppressed := s.suppressed
	*s = slot{logged: now}
	l.mu.Unlock()
	log.Log(ctx, level, msg, append(args[:len(args):len(args)], SuppressedKey, suppressed)...)
	return true
}

// Flush writes, for every key with events not logged, a line of the latest of them,
// whose "suppressed" counts the others; it does not count as a line of the interval.
func (l *Limiter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *Limiter) flushLocked() {
	for _, s := range l.keys {
		if s.suppressed == 0 {
			continue
		}
		s.log.Log(context.Background(), s.level, s.msg, append(s.args[:len(s.args):len(s.args)], SuppressedKey, s.suppressed-1)...)
		s.suppressed, s.log, s.args = 0, nil, nil
	}
}

func (l *Limiter) interval() time.Duration {
	if l.Interval > 0 {
		return l.Interval
	}
	return DefaultInterval
}
