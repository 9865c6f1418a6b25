// Package nodestatus owns the status snapshot of a kasync node: plain data with JSON
// tags, and nothing else. internal/node fills it from the node's live state
// (node.Node.Status); the dashboard (internal/dashboard) renders it and serves it as
// /status.json; the gRPC status API and `kasync status` are meant to carry the same
// struct. It sits below both so that the dashboard needs no import of the node: the
// node imports the dashboard to wire it into its HTTP mux.
//
// Guarantees:
//
//  1. A Status is a value: it holds no reference into a running node, so it may be
//     kept, marshalled and compared after the node has moved on.
//  2. JSON field names are snake_case and stable; durations are seconds (float),
//     times RFC 3339. A fact the node could not read in time is absent (null, or an
//     empty list) and named in Problems, never reported as zero.
package nodestatus
