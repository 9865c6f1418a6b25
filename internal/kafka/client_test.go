package kafka

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"go.uber.org/goleak"

	"github.com/kasync/kasync/internal/broker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// client builds a client from opts without connecting, to read options back.
func client(t *testing.T, opts []kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func TestOptsDefaults(t *testing.T) {
	t.Parallel()
	opts, err := ClientConfig{Brokers: []string{"127.0.0.1:1", "127.0.0.1:2"}}.Opts()
	require.NoError(t, err)
	cl := client(t, opts)
	require.Equal(t, []string{"127.0.0.1:1", "127.0.0.1:2"}, cl.OptValue(kgo.SeedBrokers))
	require.Equal(t, DefaultClientID, cl.OptValue(kgo.ClientID))
	require.Empty(t, cl.OptValue(kgo.SASL))
	require.Nil(t, cl.OptValue(kgo.DialTLSConfig), "no TLS unless configured")
}

func TestOptsClientIDAndTLS(t *testing.T) {
	t.Parallel()
	opts, err := ClientConfig{
		Brokers:  []string{"127.0.0.1:1"},
		ClientID: "node-7",
		TLS:      mustLoadTLS(t),
	}.Opts()
	require.NoError(t, err)
	cl := client(t, opts)
	require.Equal(t, "node-7", cl.OptValue(kgo.ClientID))
	require.NotNil(t, cl.OptValue(kgo.Dialer), "TLS installs a dialer")
}

func TestOptsSASLMechanisms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"PLAIN", "PLAIN"},
		{"plain", "PLAIN"},
		{"SCRAM-SHA-256", "SCRAM-SHA-256"},
		{"scram-sha-512", "SCRAM-SHA-512"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			opts, err := ClientConfig{
				Brokers:       []string{"127.0.0.1:1"},
				SASLMechanism: tc.in, SASLUser: "u", SASLPassword: "p",
			}.Opts()
			require.NoError(t, err)
			mechs, ok := client(t, opts).OptValue(kgo.SASL).([]sasl.Mechanism)
			require.True(t, ok)
			require.Len(t, mechs, 1)
			require.Equal(t, tc.want, mechs[0].Name())
		})
	}
}

func TestOptsErrors(t *testing.T) {
	t.Parallel()
	b := []string{"127.0.0.1:1"}
	cases := []struct {
		name string
		cfg  ClientConfig
		want []string
	}{
		{"no brokers", ClientConfig{}, []string{"brokers is empty"}},
		{"blank broker", ClientConfig{Brokers: []string{"a:1", " "}}, []string{"brokers[1] is empty"}},
		{"unknown mechanism", ClientConfig{Brokers: b, SASLMechanism: "GSSAPI", SASLUser: "u", SASLPassword: "p"},
			[]string{`"GSSAPI" is not supported`, "SCRAM-SHA-512"}},
		{"no password", ClientConfig{Brokers: b, SASLMechanism: "PLAIN", SASLUser: "u"}, []string{"needs a password"}},
		{"no user or password", ClientConfig{Brokers: b, SASLMechanism: "SCRAM-SHA-256"}, []string{"needs a username and a password"}},
		{"user without mechanism", ClientConfig{Brokers: b, SASLUser: "u"}, []string{"mechanism is empty"}},
		{"every problem at once", ClientConfig{SASLMechanism: "X", SASLUser: "u", SASLPassword: "p"},
			[]string{"brokers is empty", `"X" is not supported`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts, err := tc.cfg.Opts()
			require.Nil(t, opts)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			_, err = NewClient(tc.cfg)
			require.Error(t, err)
		})
	}
}

func TestPlainWithoutTLSWarns(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	_, err := ClientConfig{
		Brokers:       []string{"127.0.0.1:1"},
		SASLMechanism: "PLAIN", SASLUser: "u", SASLPassword: "p",
		Logger: slog.New(slog.NewTextHandler(&buf, nil)),
	}.Opts()
	require.NoError(t, err)
	require.Contains(t, buf.String(), "clear text")
}

func TestQuieterLevels(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})
	l := slog.New(quieter{h}).With("k", "v")
	ctx := context.Background()
	require.False(t, l.Enabled(ctx, slog.LevelInfo), "info is debug after lowering")
	require.True(t, l.Enabled(ctx, slog.LevelWarn))
	l.Info("chatty")
	l.Warn("careful")
	l.Error("boom")
	out := buf.String()
	require.NotContains(t, out, "chatty")
	require.Contains(t, out, `level=WARN msg=careful k=v`)
	require.Contains(t, out, `level=ERROR msg=boom k=v`)

	buf.Reset()
	dbg := slog.New(quieter{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	dbg.Info("now visible")
	require.Contains(t, buf.String(), `level=DEBUG msg="now visible"`)
}

func TestProducerOpts(t *testing.T) {
	t.Parallel()
	cl := client(t, append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, ProducerOpts()...))
	require.Equal(t, kgo.AllISRAcks(), cl.OptValue(kgo.RequiredAcks))
	require.Equal(t, ProducerLinger, cl.OptValue(kgo.ProducerLinger))
	require.Equal(t, false, cl.OptValue(kgo.DisableIdempotentWrite), "idempotence must stay on")
}

func TestProduceAgainstBroker(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(broker.Options{
		Listen:     "127.0.0.1:0",
		Partitions: 2,
		Topics:     map[string]int32{"existing": 4},
		Logger:     slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := ClientConfig{Brokers: b.Addrs(), Logger: slog.New(slog.DiscardHandler)}
	prod, err := NewClient(cfg, ProducerOpts()...)
	require.NoError(t, err)
	defer prod.Close()
	res := prod.ProduceSync(ctx, &kgo.Record{Topic: "existing", Value: []byte("x")})
	require.NoError(t, res.FirstErr(), "a durable producer (acks=all, idempotent) writes to the broker")
}
