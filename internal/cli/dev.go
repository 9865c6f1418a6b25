package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kasync/kasync/internal/broker"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/demo"
	"github.com/kasync/kasync/internal/node"
	kruntime "github.com/kasync/kasync/runtime"
)

func runDev(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "dev", "[--config FILE]")
	path := f.String("config", "", "config file (default: the built-in demo config)")
	log, err := f.setup(e, args)
	if err != nil {
		return err
	}
	cfg := config.Demo()
	if *path != "" {
		if cfg, err = loadConfig(*path); err != nil {
			return err
		}
	}
	if len(cfg.Kafka.Brokers) != 1 {
		return usagef("kafka.brokers: kasync dev runs one embedded broker; name exactly one loopback address like 127.0.0.1:9092")
	}
	// The node creates the rung and dead-letter topics itself, with the configs they need.
	topics := map[string]int32{}
	for _, t := range cfg.Tailers {
		topics[t.Topic] = 0
	}
	bopts := broker.Options{
		Listen:  cfg.Kafka.Brokers[0],
		DataDir: filepath.Join(cfg.Node.DataDir, "broker"),
		Topics:  topics,
		Logger:  log,
	}
	if err := bopts.WithDefaults().Validate(); err != nil {
		return usageError{fmt.Errorf("kafka.brokers: %w", err)}
	}
	b, err := broker.Start(bopts)
	if err != nil {
		return fmt.Errorf("starting the development broker: %w", err)
	}
	defer func() { _ = b.Close() }()
	cfg.Kafka.Brokers = b.Addrs() // the real port, when the config asked for port 0

	reg := demo.Registry(log)
	n, err := node.Start(ctx, node.Options{Config: cfg, Registry: reg, Logger: log})
	if err != nil {
		return err
	}
	fmt.Fprint(e.stdout, devBanner(cfg, reg, b, n))
	return n.Wait()
}

func devBanner(cfg *config.Config, reg *kruntime.Registry, b *broker.Broker, n *node.Node) string {
	addr := strings.Join(b.Addrs(), ",")
	var s strings.Builder
	s.WriteString("\nkasync dev: the whole engine in one process.\n\n")
	s.WriteString(b.Banner())
	s.WriteString("\n\nTailers:\n")
	for _, t := range cfg.Tailers {
		fmt.Fprintf(&s, "  %s: topic %s -> function %s\n", t.Name, t.Topic, t.Function)
	}
	if len(cfg.Tailers) > 0 {
		topic := cfg.Tailers[0].Topic
		s.WriteString("\nProduce events (one record per line; Ctrl-D ends):\n")
		fmt.Fprintf(&s, "  go run ./cmd/kasync produce --brokers %s --topic %s\n", addr, topic)
		fmt.Fprintf(&s, "  kcat -b %s -t %s -P            (or any Kafka client)\n", addr, topic)
	}
	fmt.Fprintf(&s, "\nDead letters: topic %s\n", cfg.DeadLetter.Topic)
	fmt.Fprintf(&s, "Dashboard:    http://%s/\n", n.HTTPAddr())
	fmt.Fprintf(&s, "Metrics:      http://%s/metrics\n", n.HTTPAddr())
	var remote []string // configured functions that SDK workers must serve
	for _, f := range cfg.Functions {
		if _, ok := reg.Lookup(f.Name); !ok {
			remote = append(remote, f.Name)
		}
	}
	fmt.Fprintf(&s, "Scheduler:    %s\n", n.GRPCAddr())
	if len(remote) > 0 {
		fmt.Fprintf(&s, "\nFunctions served by SDK workers: %s. Start a worker of yours (runtime.NewWorker) with\n"+
			"  Addrs: []string{%q}\n", strings.Join(remote, ", "), n.GRPCAddr())
	}
	s.WriteString("\nCtrl-C drains in-flight work, commits checkpoints and exits.\n\n")
	return s.String()
}
