// Package kafka builds franz-go clients the way every kasync part needs them:
// seed brokers, client ID, TLS, SASL and logging from one small struct
// (ClientConfig), the producer settings that kasync's durability rests on
// (ProducerOpts), and the client metrics (Metrics). Topics kasync needs are
// created and checked by delaystreams.EnsureTopics. It does not know about
// kasync's YAML configuration; the caller copies the relevant fields into a
// ClientConfig.
//
// Invariants:
//
//  1. ClientConfig.Opts validates before it builds: no brokers, an empty
//     broker address, an unknown SASL mechanism, or a SASL user without a
//     password is an error naming the field and the fix, never a client that
//     fails later at connect time.
//  2. Producers built with ProducerOpts wait for acks from all in-sync
//     replicas and stay idempotent (franz-go's default, never disabled here).
//     DESIGN invariant 1 (no loss) depends on this: a delay or dead-letter
//     record counts as durable only when such a producer's promise reports
//     success.
//  3. The client's own logs go to the configured slog.Logger one level
//     quieter than franz-go emits them: franz-go's per-connection and
//     per-rebalance info lines become debug, its warnings and errors stay
//     warnings and errors.
//  4. LoadTLS never returns a config that silently ignores a file it was
//     given: an unreadable or empty CA file, or a certificate without its key,
//     is an error naming the file.
//  5. Metrics exports a client's franz-go metrics through plugin/kprom as
//     kasync_kafka_*, labelled client=<name>, so several clients share one registry
//     without colliding; a closed client's series are unregistered
//     (TestMetricsOfSeveralClients). The core of franz-go imports no Prometheus; only
//     this option does.
package kafka
