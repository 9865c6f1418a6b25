// Package logrepeat keeps a log line that can repeat once per record or per attempt
// (a function panicking, a hostile record, a produce failing) from flooding the log:
// issue 6's policy is one line per state change, never one per record at info level.
// A Limiter lets the first event of a key through at once and then at most one line
// of the key per interval; each line carries "suppressed", the events of the key not
// logged since its previous line. It has no goroutine and no timer: counts carry over
// to the next line of the key, or to Flush, which an owner with a stop calls there.
//
// Guarantees:
//
//  1. At most one line per key per Interval (30s by default); the first event of a
//     key, and the first after a quiet Interval, is logged at once
//     (TestOneLinePerKeyPerInterval).
//  2. No event goes uncounted: every event is a line, or counted in the "suppressed"
//     of a later line of its key, at the latest the one Flush writes; so the lines
//     plus their suppressed counts are the events (TestEveryEventIsCounted).
//  3. Bounded memory: at most MaxKeys keys are tracked. A new key past that flushes
//     the pending counts and forgets every key, so callers key by a small set
//     (function, reason), never by record (TestKeysAreBounded).
//  4. An event whose level the logger does not enable costs a check, nothing more.
package logrepeat
