package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/tasks"
	"github.com/kasync/kasync/tailer"
)

// taskParts are what serves submitted tasks and task status (internal/tasks): built
// when a function has submit: true or a tailer task_status: true, on a node that reads
// Kafka.
type taskParts struct {
	writer *tasks.Writer
	index  *tasks.Index
	follow func(context.Context) error // reads the status topic into index
}

// tasksWanted reports whether the config uses submitted tasks or task status.
func tasksWanted(cfg *config.Config) bool {
	for _, f := range cfg.Functions {
		if f.Submit {
			return true
		}
	}
	for _, t := range cfg.Tailers {
		if t.TaskStatus {
			return true
		}
	}
	return false
}

// setupTasks creates the ingest topics and the task status topic, opens the task index
// and builds the status writer. It runs in buildTailers once the producer exists and
// before the rungs are known (the writer's Tracked looks them up when called, once the
// tailers run).
func (n *Node) setupTasks(ctx context.Context, adm *kadm.Client) error {
	if !tasksWanted(n.cfg) {
		return nil
	}
	partitions := n.cfg.Delay.Partitions
	if partitions == 0 {
		partitions = delaystreams.DefaultTopicPartitions
	}
	replication := int16(n.cfg.Delay.Replication)
	if replication == 0 {
		replication = -1
	}
	var ingest []string
	for _, f := range n.cfg.Functions {
		if f.Submit {
			ingest = append(ingest, config.IngestTopic(f.Name))
		}
	}
	if err := n.createTopics(ctx, adm, partitions, replication, nil, ingest...); err != nil {
		return fmt.Errorf("node: ingest topics of functions with submit: true: %w", err)
	}
	compact := "compact"
	if err := n.createTopics(ctx, adm, partitions, replication, map[string]*string{"cleanup.policy": &compact}, config.TaskStatusTopic); err != nil {
		return fmt.Errorf("node: task status topic: %w", err)
	}
	dir := filepath.Join(n.cfg.Node.DataDir, "tasks")
	index, err := tasks.OpenIndex(dir, n.log)
	if err != nil {
		return fmt.Errorf("node: task index in node.data_dir (%s): %w", dir, err)
	}
	var statusTopics []string
	for _, t := range n.cfg.Tailers {
		if t.TaskStatus {
			statusTopics = append(statusTopics, t.Topic)
		}
	}
	tracked := tasks.TopicSet(statusTopics, config.IngestTopicPrefix+".")
	// Rung topics hold submitted tasks scheduled for later: a task id naming a rung is
	// always one (a retry keeps the id of its origin).
	rungTracked := func(topic string) bool {
		for _, rg := range n.rungGroups {
			if rg.topic == topic {
				return true
			}
		}
		return false
	}
	clientCfg, err := kafkaClientConfig(n.cfg, n.log)
	if err != nil {
		_ = index.Close()
		return err
	}
	opts, err := clientCfg.Opts()
	if err != nil {
		_ = index.Close()
		return fmt.Errorf("node: kafka: %w", err)
	}
	n.tasks = &taskParts{
		writer: tasks.NewWriter(tasks.WriterConfig{Client: n.producer, Topic: config.TaskStatusTopic, Logger: n.log,
			Tracked: func(topic string) bool { return tracked(topic) || rungTracked(topic) }}),
		index:  index,
		follow: func(ctx context.Context) error { return index.Follow(ctx, config.TaskStatusTopic, opts) },
	}
	return nil
}

func (n *Node) createTopics(ctx context.Context, adm *kadm.Client, partitions int32, replication int16, configs map[string]*string, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	resp, err := adm.CreateTopics(ctx, partitions, replication, configs, topics...)
	if err != nil {
		return fmt.Errorf("create %v: %w", topics, err)
	}
	for _, r := range resp.Sorted() {
		switch {
		case r.Err == nil:
			n.log.Info("topic created", "topic", r.Topic, "partitions", r.NumPartitions)
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
		default:
			return fmt.Errorf("create topic %s: %w (let kasync's principal create topics, or create it yourself)", r.Topic, r.Err)
		}
	}
	return nil
}

// taskSink is the status sink for tailers, nil (no interface value) without task
// status.
func (n *Node) taskSink() tailer.StatusSink {
	if n.tasks == nil {
		return nil
	}
	return n.tasks.writer
}

// ingestTailers builds one tailer per function with submit: true, reading its ingest
// topic with that function; common fills in what every tailer shares.
func (n *Node) ingestTailers(common func(tailer.Config, string) tailer.Config) ([]*tailer.Tailer, error) {
	var out []*tailer.Tailer
	for i, f := range n.cfg.Functions {
		if !f.Submit {
			continue
		}
		reader, err := delaystreams.NewSourceReader(n.router, f.Name, 0)
		if err != nil {
			return nil, fmt.Errorf("node: functions[%d].submit: %w", i, err)
		}
		topic := config.IngestTopic(f.Name)
		tc := common(tailer.Config{Name: topic, Topic: topic, Function: f.Name, Group: topic, Start: tailer.StartEarliest,
			Reader: reader}, "ingest/"+f.Name)
		tc.Status = n.taskSink()
		tl, err := tailer.New(tc)
		if err != nil {
			return nil, fmt.Errorf("node: functions[%d].submit: %w", i, err)
		}
		out = append(out, tl)
	}
	return out, nil
}

// registerTasks serves the Tasks API on the gRPC server (scheduler role): Submit and
// GetTask. On a node without Kafka, or without task status, they answer UNAVAILABLE.
func (n *Node) registerTasks() {
	if n.grpcSrv == nil {
		return
	}
	limits := tasks.Limits{Functions: map[string]bool{}, MaxWorkloadBytes: n.cfg.Node.MaxWorkloadBytes}
	for _, f := range n.cfg.Functions {
		limits.Functions[f.Name] = f.Submit
	}
	cfg := tasks.Config{Limits: limits, IngestTopic: config.IngestTopic, Logger: n.log, Grants: n.taskGrants()}
	if n.producer != nil && n.router != nil {
		cfg.Client, cfg.Router = n.producer, n.router
	}
	if n.tasks != nil {
		cfg.Writer, cfg.Index = n.tasks.writer, n.tasks.index
	}
	tasks.NewService(cfg).Register(n.grpcSrv)
}

// taskGrants are node.grpc_auth.identities as what each may submit to: the functions
// it may serve. Nil when callers are not authenticated.
func (n *Node) taskGrants() tasks.Grants {
	if !n.cfg.Node.AuthEnabled() {
		return nil
	}
	g := tasks.Grants{}
	if a := n.cfg.Node.GRPCAuth; a != nil {
		for _, id := range a.Identities {
			g[id.Name] = id.Functions
		}
	}
	return g
}

// closeTasks closes the task index.
func (n *Node) closeTasks() {
	if n.tasks == nil {
		return
	}
	if err := n.tasks.index.Close(); err != nil {
		n.log.Error("closing task index", "err", err)
	}
	n.tasks = nil
}
