// Package kafkatest is the integration-test harness of kasync. Every package
// whose tests need Kafka gets it from here, so the same tests run against the
// embedded broker by default and against a real cluster when the environment
// variable KASYNC_TEST_BROKERS names one (comma-separated HOST:PORT list).
//
// What a test does:
//
//	brokers := kafkatest.Brokers(t)            // kfake, or KASYNC_TEST_BROKERS
//	topic := kafkatest.NewTopic(t, brokers, 6) // unique, created, cleaned up
//	kafkatest.ProduceN(t, brokers, topic, 1000, nil)
//	... run the code under test ...
//	require.Equal(t, want, kafkatest.CommittedOffsets(t, brokers, group, topic))
//
// Guarantees:
//
//  1. Everything a helper starts is stopped in t.Cleanup: embedded brokers,
//     clients, topics on a real cluster. Tests that use goleak stay clean.
//  2. Brokers starts a fresh in-memory broker on a free 127.0.0.1 port for
//     each call, so parallel tests never share state unless they share the
//     returned addresses.
//  3. NewTopic names are unique (sanitized test name plus a random suffix,
//     without '.', so they never collide with each other under Kafka's
//     '.'/'_' rule) and the topic exists with every partition led before it
//     returns, so producing to it right away cannot race its creation.
//  4. ProduceN, EndOffsets, CommittedOffsets and ConsumeAll fail the test
//     (t.Fatal, from the test's goroutine) on any error or when they cannot
//     finish within Timeout; they never return partial results silently.
//  5. Producing uses kasync's durable producer options (acks=all,
//     idempotent), the same as the delay and dead-letter producers.
package kafkatest
