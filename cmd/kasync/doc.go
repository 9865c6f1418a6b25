// Command kasync is the one kasync binary: a development environment, a production node,
// the embedded broker, an SDK worker and the tools around them. See `kasync help`.
//
// main only hands its arguments and standard streams to internal/cli, which parses
// flags and runs the parts; it holds no logic of its own (nats-server's thin main).
package main
