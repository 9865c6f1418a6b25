package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kslog"
)

// DefaultClientID is the client ID brokers see when ClientConfig has none.
const DefaultClientID = "kasync"

// SASL mechanisms ClientConfig accepts (case does not matter).
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// ProducerLinger is how long ProducerOpts lets a partition's batch wait for
// more records. It is below franz-go's 10ms default because kasync's
// producers sit on the retry path: a source offset waits for the ack before
// it can be checkpointed.
const ProducerLinger = 5 * time.Millisecond

// ClientConfig is what every kasync Kafka client needs to reach the cluster.
type ClientConfig struct {
	// Brokers are the seed brokers, HOST:PORT. Required.
	Brokers []string
	// ClientID is sent to the brokers. Default DefaultClientID.
	ClientID string
	// TLS, when not nil, dials brokers over TLS with this config (see
	// LoadTLS).
	TLS *tls.Config
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for no
	// SASL. SASLUser and SASLPassword are required with it.
	SASLMechanism, SASLUser, SASLPassword string
	// Logger receives the client's logs (see the package invariants for
	// levels). Default: no client logs.
	Logger *slog.Logger
}

// Opts validates c and returns the franz-go options for it.
func (c ClientConfig) Opts() ([]kgo.Opt, error) {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: brokers is empty; list one or more HOST:PORT addresses, such as 127.0.0.1:9092"))
	}
	for i, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			errs = append(errs, fmt.Errorf("kafka: brokers[%d] is empty; give a HOST:PORT address or remove it", i))
		}
	}
	mech, err := c.saslMechanism()
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	clientID := c.ClientID
	if clientID == "" {
		clientID = DefaultClientID
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(clientID),
	}
	if c.Logger != nil {
		opts = append(opts, kgo.WithLogger(kslog.New(slog.New(quieter{c.Logger.Handler()}).With("component", "kafka"))))
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS))
	}
	if mech != nil {
		if c.TLS == nil && c.Logger != nil && mech.Name() == SASLPlain {
			c.Logger.Warn("kafka: SASL PLAIN without TLS sends the password in clear text; configure TLS or use SCRAM")
		}
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

func (c ClientConfig) saslMechanism() (sasl.Mechanism, error) {
	if c.SASLMechanism == "" {
		if c.SASLUser != "" || c.SASLPassword != "" {
			return nil, errors.New("kafka: sasl username or password is set but sasl mechanism is empty; set the mechanism to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		return nil, nil
	}
	var missing []string
	if c.SASLUser == "" {
		missing = append(missing, "username")
	}
	if c.SASLPassword == "" {
		missing = append(missing, "password")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kafka: sasl mechanism %s needs a %s; set it (a ${ENV} reference keeps secrets out of the file)", c.SASLMechanism, strings.Join(missing, " and a "))
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case SASLPlain:
		return plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism(), nil
	case SASLScramSHA256:
		return scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism(), nil
	case SASLScramSHA512:
		return scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka: sasl mechanism %q is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
}

// NewClient returns a client for c with extra options applied after c's.
func NewClient(c ClientConfig, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.Opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: new client: %w", err)
	}
	return cl, nil
}

// NewAdmin returns an admin client for c. Closing it closes its client.
func NewAdmin(c ClientConfig, extra ...kgo.Opt) (*kadm.Client, error) {
	cl, err := NewClient(c, extra...)
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// ProducerOpts are the options of a durable producer: acks from all in-sync
// replicas, idempotent writes (franz-go's default, kept), and a short linger.
// Append them to ClientConfig.Opts.
func ProducerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(ProducerLinger),
		// A retriable produce error (NOT_ENOUGH_REPLICAS, a leader moving) makes the
		// client refresh metadata before it retries, at most once per MetadataMinAge:
		// with franz-go's 5s, every rung and dead-letter record of the node waited 5s
		// after one such error, and the source partitions behind them.
		kgo.MetadataMinAge(ProducerMetadataMinAge),
	}
}

// ProducerMetadataMinAge bounds how often the producer may refresh metadata, and so
// how long a retriable produce error holds the records behind it.
const ProducerMetadataMinAge = 500 * time.Millisecond

// quieter lowers every record one slog level before handing it on, so
// franz-go's info lines (connections, rebalances) are debug for kasync.
type quieter struct{ h slog.Handler }

func quieterLevel(l slog.Level) slog.Level {
	if l >= slog.LevelWarn {
		return l
	}
	return l - (slog.LevelInfo - slog.LevelDebug)
}

func (q quieter) Enabled(ctx context.Context, l slog.Level) bool {
	return q.h.Enabled(ctx, quieterLevel(l))
}

func (q quieter) Handle(ctx context.Context, r slog.Record) error {
	r.Level = quieterLevel(r.Level)
	return q.h.Handle(ctx, r)
}

func (q quieter) WithAttrs(attrs []slog.Attr) slog.Handler { return quieter{q.h.WithAttrs(attrs)} }
func (q quieter) WithGroup(name string) slog.Handler       { return quieter{q.h.WithGroup(name)} }
