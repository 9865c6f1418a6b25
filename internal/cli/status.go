package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/dlq"
	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/status"
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
	f := newFlags(e, "status", "[--config FILE | --brokers ADDRS] [--group NAME]... [--json] [--timeout D]")
	cfgPath := f.String("config", "", "a node's config file: kafka.brokers (and tls, sasl), its tailers, delay rungs and dead_letter.topic come from it")
	brokers := f.String("brokers", config.DefaultBroker, "Kafka brokers, comma-separated (without --config)")
	var groups groupList
	f.Var(&groups, "group", "report on this consumer group as a tailer; repeat it or comma-separate names (default: the config's tailers, or every group that looks like kasync's)")
	asJSON := f.Bool("json", false, "print the report as JSON instead of tables")
	timeout := f.Duration("timeout", statusTimeout, "give up on the brokers after this long; reading record ages takes at most half of it")
	log, err := f.setup(e, args)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout %v: give a positive duration, such as 10s", *timeout)
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
