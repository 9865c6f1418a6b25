package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/dlq"
	"github.com/kasync/kasync/internal/kafka"
)

const dlqSynopsis = "list|show|redrive [flags]   (kasync dlq SUBCOMMAND -h for its flags)"

// dlqListLimit is how many entries `kasync dlq list` shows unless told.
const dlqListLimit = 50

func runDLQ(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef("want `kasync dlq %s`", dlqSynopsis)
	}
	switch args[0] {
	case "list":
		return runDLQList(ctx, e, args[1:])
	case "show":
		return runDLQShow(ctx, e, args[1:])
	case "redrive":
		return runDLQRedrive(ctx, e, args[1:])
	case "help", "-h", "--help":
		fmt.Fprintf(e.stderr, "Usage: kasync dlq %s\n\n"+
			"  list     the dead letters a filter selects, newest last\n"+
			"  show     one dead letter with every header, its key and its value\n"+
			"  redrive  produce selected dead letters again, to their source topic or --to TOPIC\n", dlqSynopsis)
		return flag.ErrHelp
	}
	return usagef("unknown subcommand %q; use list, show or redrive", args[0])
}

// dlqConnFlags say how to reach the dead-letter topic.
type dlqConnFlags struct{ config, brokers, topic string }

func addDLQConnFlags(f *flags) *dlqConnFlags {
	c := &dlqConnFlags{}
	f.StringVar(&c.config, "config", "", "a node's config file: kafka.brokers, kafka.tls, kafka.sasl and dead_letter.topic come from it")
	f.StringVar(&c.brokers, "brokers", config.DefaultBroker, "Kafka brokers, comma-separated (without --config)")
	f.StringVar(&c.topic, "topic", config.DefaultDeadLetterTopic, "the dead-letter topic (without --config)")
	return c
}

// open connects to the dead-letter topic; f must be parsed.
func (c *dlqConnFlags) open(ctx context.Context, f *flags, log *slog.Logger) (*dlq.Conn, error) {
	var (
		cc    kafka.ClientConfig
		topic = c.topic
	)
	if c.config != "" {
		if isFlagSet(f, "brokers") || isFlagSet(f, "topic") {
			return nil, usagef("--config conflicts with --brokers and --topic: the config names the brokers (kafka.brokers) and the dead-letter topic (dead_letter.topic); pass --config alone, or --brokers and --topic")
		}
		cfg, err := loadConfig(c.config)
		if err != nil {
			return nil, err
		}
		if cc, err = kafkaClientConfig(cfg, log); err != nil {
			return nil, usageError{err}
		}
		topic = cfg.DeadLetter.Topic
	} else {
		cc = kafka.ClientConfig{Brokers: dlq.SplitList(c.brokers), Logger: log}
		if len(cc.Brokers) == 0 {
			return nil, usagef("--brokers is empty; give HOST:PORT[,HOST:PORT...], such as 127.0.0.1:9092")
		}
		if strings.TrimSpace(topic) == "" {
			return nil, usagef("--topic is empty; name the dead-letter topic (default %s)", config.DefaultDeadLetterTopic)
		}
	}
	conn, err := dlq.Open(ctx, cc, topic)
	return conn, dlqErr(err)
}

// kafkaClientConfig is the client config of cfg's kafka section (as a node builds it).
func kafkaClientConfig(cfg *config.Config, log *slog.Logger) (kafka.ClientConfig, error) {
	cc := kafka.ClientConfig{Brokers: cfg.Kafka.Brokers, ClientID: cfg.Kafka.ClientID, Logger: log}
	if t := cfg.Kafka.TLS; t != nil {
		tc, err := kafka.LoadTLS(t.CAFile, t.CertFile, t.KeyFile)
		if err != nil {
			return cc, fmt.Errorf("kafka.tls: %w", err)
		}
		cc.TLS = tc
	}
	if s := cfg.Kafka.SASL; s != nil {
		cc.SASLMechanism, cc.SASLUser, cc.SASLPassword = s.Mechanism, s.Username, s.Password
	}
	return cc, nil
}

// dlqErr makes the dlq package's bad-input errors usage errors (exit status 2).
func dlqErr(err error) error {
	if err != nil && errors.Is(err, dlq.ErrBadInput) {
		return usageError{err}
	}
	return err
}

// dlqFilterFlags select dead letters.
type dlqFilterFlags struct{ function, reason, since, until, errText string }

func addDLQFilterFlags(f *flags) *dlqFilterFlags {
	ff := &dlqFilterFlags{}
	f.StringVar(&ff.function, "function", "", "only these functions (kasync-function), comma-separated")
	f.StringVar(&ff.reason, "reason", "", "only these reasons (kasync-reason: exhausted, fatal, unknown-function, too-large, ...), comma-separated")
	f.StringVar(&ff.since, "since", "", "only dead-lettered at or after: RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (2h)")
	f.StringVar(&ff.until, "until", "", "only dead-lettered before: RFC 3339 or a duration ago")
	f.StringVar(&ff.errText, "error", "", "only those whose kasync-error contains this text (any case)")
	return ff
}

func (ff *dlqFilterFlags) empty() bool {
	return ff.function == "" && ff.reason == "" && ff.since == "" && ff.until == "" && ff.errText == ""
}

func (ff *dlqFilterFlags) filter(now time.Time) (dlq.Filter, error) {
	since, err := dlq.ParseTime(ff.since, now)
	if err != nil {
		return dlq.Filter{}, usagef("--since %v", err)
	}
	until, err := dlq.ParseTime(ff.until, now)
	if err != nil {
		return dlq.Filter{}, usagef("--until %v", err)
	}
	f := dlq.Filter{
		Functions:     dlq.SplitList(ff.function),
		Reasons:       dlq.SplitList(ff.reason),
		Since:         since,
		Until:         until,
		ErrorContains: ff.errText,
	}
	return f, dlqErr(f.Validate())
}

// selectEntries returns the dead letters filter selects and how many were read.
func selectEntries(ctx context.Context, conn *dlq.Conn, filter dlq.Filter, keep func(*dlq.Entry)) (int, error) {
	read := 0
	err := conn.Scan(ctx, func(en *dlq.Entry) error {
		read++
		if filter.Match(en) {
			keep(en)
		}
		return nil
	})
	return read, err
}

func runDLQList(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "dlq list", "[--config FILE | --brokers ADDRS --topic T] [--function F] [--reason R] [--since T] [--until T] [--error TEXT] [--limit N]")
	cf := addDLQConnFlags(f)
	ff := addDLQFilterFlags(f)
	limit := f.Int("limit", dlqListLimit, "show at most the newest N matches; 0 for all")
	log, err := f.setup(e, args)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("--limit %d: give a number of records, or 0 for all", *limit)
	}
	filter, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	conn, err := cf.open(ctx, f, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	ledger, _, err := conn.ReadLedger(ctx)
	if err != nil {
		return err
	}
	newest := dlq.NewNewest(*limit)
	matched := 0
	read, err := selectEntries(ctx, conn, filter, func(en *dlq.Entry) { matched++; newest.Add(en) })
	if err != nil {
		return err
	}
	entries := newest.Entries()
	if err := dlq.WriteTable(e.stdout, entries, ledger); err != nil {
		return fmt.Errorf("dlq list: %w", err)
	}
	fmt.Fprintf(e.stderr, "%d of %d dead letters in %s match; showing %d (the newest; --limit)\n", matched, read, conn.Topic(), len(entries))
	return nil
}

func runDLQShow(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "dlq show", "[--config FILE | --brokers ADDRS --topic T] PARTITION/OFFSET")
	cf := addDLQConnFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() == 0 {
		return usagef("name a record as PARTITION/OFFSET, such as 0/42 (kasync dlq list shows them)")
	}
	arg := f.Arg(0)
	if err := f.parse(f.Args()[1:]); err != nil { // flags may follow the record too
		return err
	}
	if err := f.noArgs(); err != nil {
		return err
	}
	log, err := f.logger(e)
	if err != nil {
		return err
	}
	pos, err := dlq.ParsePos(arg)
	if err != nil {
		return usagef("record %v", err)
	}
	conn, err := cf.open(ctx, f, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	entry, err := conn.Get(ctx, pos)
	if err != nil {
		return dlqErr(err)
	}
	ledger, _, err := conn.ReadLedger(ctx)
	if err != nil {
		return err
	}
	return dlq.WriteEntry(e.stdout, conn.Topic(), entry, ledger)
}

func runDLQRedrive(ctx context.Context, e env, args []string) error {
	f := newFlags(e, "dlq redrive", "[--config FILE | --brokers ADDRS --topic T] (FILTER | --all) [--to TOPIC] [--dry-run] [--rate N] [--limit N]")
	cf := addDLQConnFlags(f)
	ff := addDLQFilterFlags(f)
	all := f.Bool("all", false, "redrive every dead letter not redriven yet (instead of a filter)")
	to := f.String("to", "", "produce to this topic, such as the function's ingest topic kasync.fn.NAME (default: each record's source topic, from kasync-origin)")
	dryRun := f.Bool("dry-run", false, "print what would be redriven; produce nothing")
	rateFlag := f.Float64("rate", 0, "at most N records per second; 0 for no limit")
	limit := f.Int("limit", 0, "redrive at most N records (the first by partition and offset); 0 for all")
	log, err := f.setup(e, args)
	if err != nil {
		return err
	}
	switch {
	case *all && !ff.empty():
		return usagef("--all conflicts with --function, --reason, --since, --until and --error; pass a filter or --all")
	case !*all && ff.empty():
		return usagef("name what to redrive with --function, --reason, --since, --until or --error, or pass --all for every dead letter")
	case *rateFlag < 0:
		return usagef("--rate %v: give records per second, or 0 for no limit", *rateFlag)
	case *limit < 0:
		return usagef("--limit %d: give a number of records, or 0 for all", *limit)
	case *to != strings.TrimSpace(*to) || (*to == "" && isFlagSet(f, "to")):
		return usagef("--to %q: name an existing topic", *to)
	}
	filter, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	conn, err := cf.open(ctx, f, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	if *to == conn.Topic() || *to == conn.Ledger() {
		return usagef("--to %s is the dead-letter topic or its ledger; name the function's source or ingest topic", *to)
	}
	// The ledger is read in full before selecting: what it holds is skipped.
	ledger, _, err := conn.ReadLedger(ctx)
	if err != nil {
		return err
	}
	var selected []*dlq.Entry
	if _, err := selectEntries(ctx, conn, filter, func(en *dlq.Entry) { selected = append(selected, en) }); err != nil {
		return err
	}
	plan, err := dlq.NewPlan(selected, ledger, *to, *limit)
	if err != nil {
		return dlqErr(err)
	}
	if err := conn.CheckTargets(ctx, plan, *to); err != nil {
		return dlqErr(err)
	}
	skipped := planSummary(len(selected), plan, conn.Ledger())
	if *dryRun {
		for _, it := range plan.Items {
			fmt.Fprintf(e.stdout, "would redrive %s/%s (function %s, reason %s) to %s\n",
				conn.Topic(), it.Entry.Pos, it.Entry.Function, it.Entry.Reason, it.Target)
		}
		fmt.Fprintf(e.stdout, "dry run: would redrive %d records (%s); nothing was produced\n", len(plan.Items), skipped)
		return nil
	}
	if len(plan.Items) == 0 {
		fmt.Fprintf(e.stdout, "nothing to redrive (%s)\n", skipped)
		return nil
	}
	if err := conn.EnsureLedger(ctx); err != nil {
		return err
	}
	progress := dlq.NewProgress(e.stderr, isTerminal(e.stderr), len(plan.Items))
	n, err := conn.Redrive(ctx, plan, ledger, dlq.RedriveOptions{Rate: *rateFlag, Progress: progress.Update})
	progress.Finish()
	fmt.Fprintf(e.stdout, "redrove %d of %d records to %s (%s)\n", n, len(plan.Items), strings.Join(plan.Targets(), ", "), skipped)
	return err
}

// planSummary says what a redrive selected and left out.
func planSummary(selected int, plan *dlq.Plan, ledger string) string {
	parts := []string{fmt.Sprintf("%d selected", selected)}
	if plan.AlreadyRedriven > 0 {
		parts = append(parts, fmt.Sprintf("%d already redriven (ledger %s)", plan.AlreadyRedriven, ledger))
	}
	if n := len(plan.ValueDropped); n > 0 {
		parts = append(parts, fmt.Sprintf("%d left out because their value was dropped (too large)", n))
	}
	if n := plan.Unlimited - len(plan.Items); n > 0 {
		parts = append(parts, fmt.Sprintf("%d over --limit", n))
	}
	return strings.Join(parts, ", ")
}

func isFlagSet(f *flags, name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}
