package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/dlq"
	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/nodestatus"
	"github.com/kasync/kasync/internal/status"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
)

// statusTimeout is how long `kasync status` waits for the brokers unless told.
const statusTimeout = 10 * time.Second

// groupList is a repeatable, comma-separated flag of group names.
type groupList []string

func (g *groupList) String() string { return strings.Join(*g, ",") }

func (g *groupList) Set(s string) error {
	names := dlq.SplitList(s)
	if len(names) == 0 || len(names) != strings.Count(s, ",")+1 {
		return fmt.Errorf("%q has an empty group name; give names such as kasync.orders, comma-separated or one per --group", s)
	}
	*g = append(*g, names...)
	return nil
}

func runStatus(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "status", "[--config FILE | --brokers ADDRS] [--group NAME]... [--json] [--timeout D]\n       kasync status --node ADDR [TLS/token flags] [--json] [--timeout D]")
	cfgPath := f.String("config", "", "a node's config file: kafka.brokers (and tls, sasl), its tailers, delay rungs and dead_letter.topic come from it")
	brokers := f.String("brokers", config.DefaultBroker, "Kafka brokers, comma-separated (without --config)")
	var groups groupList
	f.Var(&groups, "group", "report on this consumer group as a tailer; repeat it or comma-separate names (default: the config's tailers, or every group that looks like kasync's)")
	asJSON := f.Bool("json", false, "print the report as JSON instead of tables")
	timeout := f.Duration("timeout", statusTimeout, "give up on the brokers (or the node) after this long; reading record ages takes at most half of it")
	node := f.String("node", "", "ask a running node's gRPC status API (its node.grpc_listen; a node with the scheduler role) instead of the brokers")
	sec := addSecurityFlags(f)
	log, err := f.setup(e, args)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout %v: give a positive duration, such as 10s", *timeout)
	}
	if *node != "" || isFlagSet(f, "node") {
		for _, other := range []string{"config", "brokers", "group"} {
			if isFlagSet(f, other) {
				return usagef("--node conflicts with --%s: --node asks a running node for its own snapshot, --config, --brokers and --group read the brokers; pass one way", other)
			}
		}
		return nodeStatus(ctx, e, *node, sec, *asJSON, *timeout)
	}
	for _, name := range securityFlagNames {
		if isFlagSet(f, name) {
			return usagef("--%s applies to --node only (the brokers' TLS and SASL come from --config's kafka section); add --node ADDR or leave it out", name)
		}
	}
	req := status.Request{
		Groups:          groups,
		RungPrefix:      config.DefaultDelayTopicPrefix,
		DeadLetterTopic: config.DefaultDeadLetterTopic,
		PeekTimeout:     *timeout / 2,
	}
	var cc kafka.ClientConfig
	dlqList := "kasync dlq list"
	if *cfgPath != "" {
		if isFlagSet(f, "brokers") {
			return usagef("--config conflicts with --brokers: the config names the brokers (kafka.brokers); pass one of them")
		}
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		if cc, err = kafkaClientConfig(cfg, log); err != nil {
			return usageError{err}
		}
		for _, t := range cfg.Tailers {
			req.Tailers = append(req.Tailers, status.TailerSpec{Name: t.Name, Group: t.Group, Topic: t.Topic})
		}
		for _, fn := range cfg.Functions {
			if fn.Submit {
				req.Tailers = append(req.Tailers, status.IngestSpec(config.IngestTopic(fn.Name)))
			}
		}
		req.RungPrefix, req.Rungs = cfg.Delay.TopicPrefix, config.Durations(cfg.Delay.Rungs)
		req.DeadLetterTopic = cfg.DeadLetter.Topic
		dlqList += " --config " + *cfgPath
	} else {
		cc = kafka.ClientConfig{Brokers: dlq.SplitList(*brokers), Logger: log}
		if len(cc.Brokers) == 0 {
			return usagef("--brokers is empty; give HOST:PORT[,HOST:PORT...], such as %s, or --config FILE", config.DefaultBroker)
		}
		dlqList += " --brokers " + strings.Join(cc.Brokers, ",")
	}

	collectCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	report, err := status.Collect(collectCtx, cc, req)
	var unknown *status.UnknownGroupsError
	switch {
	case errors.As(err, &unknown):
		return usagef("--group: %v; check the name, or leave --group out to see them", unknown)
	case errors.Is(err, status.ErrUnreachable):
		where := "--brokers"
		if *cfgPath != "" {
			where = "kafka.brokers in " + *cfgPath
		}
		return fmt.Errorf("%w; check %s and that the brokers are up (kasync status waits at most --timeout, %v)", err, where, *timeout)
	case err != nil:
		return err
	}
	if *asJSON {
		return status.WriteJSON(e.stdout, report)
	}
	return status.WriteTable(e.stdout, report, dlqList)
}

// securityFlagNames are the flags of addSecurityFlags, which only --node uses.
var securityFlagNames = []string{"tls", "tls-ca", "tls-cert", "tls-key", "tls-server-name", "token-file"}

// nodeStatus is `kasync status --node ADDR`: the node's snapshot from its gRPC status
// API (kasync.v1.Node), as tables or JSON. The exit statuses follow the --brokers
// path: 2 for bad usage and for credentials the node refuses (like kasync submit), 1
// for a node that cannot be reached in time; problems the node reports are shown,
// with exit status 0.
func nodeStatus(ctx context.Context, e env, addr string, sec *securityFlags, asJSON bool, timeout time.Duration) error {
	if addr == "" {
		return usagef("--node is empty; give a node's gRPC address (node.grpc_listen), such as 127.0.0.1:7070")
	}
	dial, err := sec.dialOptions()
	if err != nil {
		return err
	}
	if !sec.usesTLS() {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	conn, err := grpc.NewClient(addr, dial...)
	if err != nil {
		return usagef("--node %q: %v", addr, err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, err := kasyncv1.NewNodeClient(conn).GetStatus(ctx, &kasyncv1.GetStatusRequest{})
	if err != nil {
		return nodeStatusError(addr, timeout, err)
	}
	st, err := nodestatus.FromProto(p)
	if err != nil {
		return fmt.Errorf("the node at %s answered a status this kasync cannot read: %w", addr, err)
	}
	if asJSON {
		return status.WriteNodeJSON(e.stdout, &st)
	}
	return status.WriteNodeTable(e.stdout, addr, &st)
}

// nodeStatusError says what a failed GetStatus means and what to check.
func nodeStatusError(addr string, timeout time.Duration, err error) error {
	st := grpcstatus.Convert(err)
	switch st.Code() {
	case codes.Unauthenticated, codes.PermissionDenied:
		return usagef("the node at %s refused the call: %s; give the credentials it expects (--tls-ca, --tls-cert and --tls-key, --token-file)",
			addr, st.Message())
	case codes.Unimplemented:
		return fmt.Errorf("the node at %s does not serve the status API (an older kasync?): %s; use --brokers or --config instead", addr, st.Message())
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("cannot reach the node at %s: %s (%s); check --node (a node's node.grpc_listen; only nodes with the scheduler role serve it) and the TLS flags (kasync status waits at most --timeout, %v)",
			addr, st.Message(), st.Code(), timeout)
	}
	return fmt.Errorf("status from node %s: %s (%s)", addr, st.Message(), st.Code())
}
