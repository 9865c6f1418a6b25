// Package nodestatus owns the status snapshot of a kasync node: plain data with JSON
// tags, and its lossless conversion to and from the gRPC status API's messages
// (kasync.v1.NodeStatus: ToProto, FromProto). internal/node fills it from the node's
// live state (node.Node.Status) and serves it on the gRPC Node service; the dashboard
// (internal/dashboard) renders it and serves it as /status.json; `kasync status --node`
// decodes it and renders it as tables (internal/status). It sits below all of them so
// that the dashboard needs no import of the node: the node imports the dashboard to
// wire it into its HTTP mux.
//
// Guarantees:
//
//  1. A Status is a value: it holds no reference into a running node, so it may be
//     kept, marshalled and compared after the node has moved on.
//  2. JSON field names are snake_case and stable; durations are seconds (float),
//     times RFC 3339. A fact the node could not read in time is absent (null, or an
//     empty list) and named in Problems, never reported as zero.
//  3. The status API carries a snapshot unchanged: FromProto(ToProto(s)) == s, as Go
//     values and as JSON, for every s in the form a node builds it; an unknown rung
//     depth or oldest due, unread dead letters and nil lists stay apart from zero and
//     empty ones (TestProtoRoundTrip). ToProto always marshals (TestToProtoAlwaysMarshals).
//  4. FromProto never panics on any message; it refuses, naming the field, what no
//     node sends (a timestamp out of range, a histogram whose counts do not fit its
//     bounds, a rung's lateness without its oldest due or the reverse), and what it accepts encodes and decodes again unchanged
//     (TestFromProtoRefusesMalformed, FuzzFromProto).
package nodestatus
