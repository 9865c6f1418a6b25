// Package httpfn runs HTTP functions: a function configured with a url is run by
// POSTing each workload to that URL. Its Executor is the scheduler.Executor of one
// such function; it owns the function's connection pool, the CloudEvents encoding
// of a workload, and the mapping of HTTP responses to scheduler outcomes.
//
// # The request (CloudEvents 1.0, HTTP binding, binary content mode)
//
// The body is the workload's Payload. The headers are:
//
//	ce-specversion   1.0
//	ce-id            Workload.ID (stable across attempts: an idempotency key)
//	ce-source        Workload.Source, or DefaultSource ("kasync") when it is empty
//	ce-type          kasync.<Config.Function>
//	ce-time          Workload.Created in RFC 3339, UTC; absent when it is zero
//	ce-attempt       Workload.Attempt (1 for the first run)
//	ce-partitionkey  Workload.Key, absent when the key is empty
//	Content-Type     the value of the record's last header named content-type (in
//	                 any case), if it has one that HTTP can carry
//	kasync-h-<name>  one per record header, repeated names included, in order
//
// Attribute values, the key and record header values are encoded with
// EncodeHeaderValue: the percent-encoding of the CloudEvents HTTP binding, which also
// encodes ','. Record header names are encoded with EncodeHeaderName: bytes that are
// not HTTP token characters, and '%', become %XX. DecodeHeaderValue and
// DecodeHeaderName reverse them; HTTP itself does not keep the case of header names.
//
// # The outcome
//
//	2xx                                    Success
//	429, 503                               Retriable(ReasonOverloaded), Retry-After honoured
//	408, other 5xx                         Retriable(ReasonError), Retry-After honoured
//	other 4xx, 1xx, 3xx                    Fatal(ReasonFatal); redirects are not followed
//	any other status code (600-999)        Retriable(ReasonError)
//	no response within the timeout         Retriable(ReasonTimeout)
//	the caller's ctx done first            Retriable(ReasonShutdown)
//	no response (refused, reset, DNS, TLS) Retriable(ReasonError)
//
// A failure's Err reads "POST <url>: 503 Service Unavailable: <body>", with at most
// Config.MaxErrorBytes of the body as valid UTF-8. Retry-After is delay-seconds or an
// HTTP-date, capped at MaxRetryAfter; a date in the past is 0 and an unreadable value
// is ignored (logged at debug level). A connection error after a server asked for a
// client certificate that Config.TLS lacks says so: with TLS 1.3 the server's refusal
// itself often never reaches the client, which sees only a closed connection.
//
// What a caller must do:
//
//  1. Build an Executor with New, one per HTTP function, and Close it when the
//     function is gone, to close its idle connections.
//  2. Pass a positive timeout to Execute; without one only ctx ends an attempt.
//
// What the package guarantees:
//
//  1. Every Execute returns exactly one outcome, classified as above, and returns by
//     the timeout or as soon as ctx is done, whatever the server does.
//  2. Every request is one the Go HTTP client sends: whatever bytes a workload's ID,
//     source, key and header names and values hold, the encoded headers are valid
//     (values are printable ASCII without spaces; names are tokens), and decoding
//     gives back those bytes (names up to the case of ASCII letters).
//  3. Redirects are never followed: a 3xx is the function's answer.
//  4. The user info of the URL (a password) appears in no error and no log line; it
//     is sent only as basic authentication.
//  5. Every response body is closed, and at most MaxErrorBytes plus 64 KiB of it is
//     read, so a huge body costs no memory; a body of up to 64 KiB leaves its
//     connection free for the next attempt.
//  6. At most Config.MaxConns connections are open to the URL's host at once, and
//     idle ones are kept and reused (HTTP/2 is used when an https server offers it).
package httpfn
