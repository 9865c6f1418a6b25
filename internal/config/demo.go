package config

import (
	"os"
	"path/filepath"
)

// DemoFunction and DemoTopic are what `kasync dev` serves and reads with no config file.
const (
	DemoFunction = "echo"
	DemoTailer   = "demo"
	DemoTopic    = "kasync.demo"
)

// DemoYAML is the configuration `kasync dev` uses without --config, as a commented file
// to copy and start from. Parse(DemoYAML) equals Demo() (data_dir aside, which follows
// $TMPDIR here and os.TempDir() there).
const DemoYAML = `# kasync configuration: the demo that ` + "`kasync dev`" + ` runs without --config.
# Copy it and change what you need. Unknown keys are errors; ${VAR} and ${VAR:-default}
# are read from the environment ($$ is a literal $).

kafka:
  # host:port of the brokers; several from the environment: [${KAFKA_BROKERS:-127.0.0.1:9092}]
  brokers: ["127.0.0.1:9092"]
  client_id: kasync
  session_timeout: 45s                        # a killed node's partitions wait this long before they move
  # tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem}
  # sasl: {mechanism: SCRAM-SHA-512, username: kasync, password: "${KAFKA_PASSWORD}"}

node:
  data_dir: ${TMPDIR:-/tmp}/kasync-dev-data   # Pebble checkpoints; somewhere durable in production
  grpc_listen: 127.0.0.1:7070                 # Push, Work, Submit and status APIs
  http_listen: 127.0.0.1:8080                 # /metrics, /healthz, /readyz, the dashboard
  max_workload_bytes: 1048576                 # larger records go to the dead-letter topic
  # Securing the gRPC API (README "Securing the gRPC API"); without grpc_auth, anyone who
  # reaches grpc_listen may push and serve every function.
  # grpc_tls: {cert_file: server.pem, key_file: server-key.pem, client_ca_file: clients-ca.pem}  # client_ca_file: mutual TLS
  # grpc_auth:
  #   tokens_file: /etc/kasync/tokens         # "identity token" lines; clients send authorization: Bearer <token>
  #   identities:                             # without it, every authenticated caller may do everything
  #     - {name: payments-worker, functions: [echo]}   # "*" for every function
  #     - {name: tailer-eu, push: true}
  # A node run with --scheduler ADDR (tailer or delay role only) connects with:
  # scheduler_tls: {ca_file: ca.pem, cert_file: node.pem, key_file: node-key.pem, server_name: scheduler.internal}
  # scheduler_token_file: /etc/kasync/scheduler-token   # the token alone

delay:
  topic_prefix: kasync.delay                  # rung topics: kasync.delay.30s, kasync.delay.1m, ...
  rungs: [30s, 1m, 5m, 30m]
  tolerance: 15s                              # a retry due this soon waits in memory; default: half the smallest rung
  partitions: 12                              # of the rung and dead-letter topics kasync creates
  replication: 0                              # of those topics; 0 or -1 = the broker's default
  max_in_flight: 10000                        # records each rung's reader holds or runs at once

dead_letter:
  topic: kasync.dead-letter
  min_retention: 168h                         # kasync refuses to start if the topic keeps less; or infinite

storm_guard:                                  # when a function fails a lot, pause its source and retry in place
  disabled: false
  window: 30s                                 # sliding window of outcomes, per function
  min_outcomes: 20                            # outcomes in the window before the guard may turn on
  threshold: 0.9                              # failure ratio that turns it on
  retry_min: 1s                               # in-place retry backoff while on: 1s, 2s, 4s, ...
  retry_max: 30s                              # ... up to this

checkpoint:
  interval: 1s                                # at most one fsync per interval
  max_pending: 10000                          # or sooner, after this many completed offsets; no more wait for a sync

scheduler:
  max_concurrency: 0                          # attempts running at once over all functions; 0 = no bound
  worker_heartbeat_timeout: 15s               # an SDK worker's task with no heartbeat this long runs elsewhere

tenants:                                      # contended capacity is shared between tenants by weight
  - name: default                             # the tenant of functions that name none
    weight: 1
    concurrency: 0                            # quota of attempts running at once; 0 = none
    rate: 0                                   # quota of starts per second; 0 = none

functions:
  - name: echo                                # served in process by kasync dev; without url,
    concurrency: 64                           # SDK workers serve a function
    # url: http://127.0.0.1:9000/echo         # an HTTP function (CloudEvents, binary mode)
    # tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem}   # for an https url
    tenant: default
    rate: 0                                   # starts per second; 0 = no limit
    timeout: 30s                              # per attempt
    adaptive:                                 # halves concurrency on 429/503/timeouts, grows back on success
      disabled: false
      min: 1                                  # never below this
      latency_factor: 0                       # >1: also shrink when latency passes this multiple of usual
    retry:
      max_attempts: 5                         # then the dead-letter topic
      backoff: [30s, 1m, 5m, 30m]             # before attempt 2, 3, ...; the last repeats
    submit: true                              # accept single tasks: kasync submit --function echo

tailers:
  - name: demo
    topic: kasync.demo                        # produce to it: kasync produce --topic kasync.demo
    function: echo
    group: kasync.demo                        # default: kasync.<tailer name>
    start: earliest                           # or latest, for a group with no checkpoint
    offsets_lost: earliest                    # or fail: when retention removed records before they ran
    ordering: unordered                       # or key, or partition
    priority: 0                               # higher runs first; a record's kasync-priority header overrides it
    batch: {max_records: 500, max_wait: 10ms}
    max_in_flight: 10000
    revoke_timeout: 10s                       # time to finish and commit when a partition moves
    task_status: false                        # true: record every event's task state (kasync task ID)
`

// Demo returns the configuration `kasync dev` uses with no file: the embedded broker on
// 127.0.0.1:9092, the in-process function "echo", and tailer "demo" reading kasync.demo.
// Its data directory is under os.TempDir(). Defaults are applied; it is valid.
func Demo() *Config {
	c := &Config{
		Kafka:   Kafka{Brokers: []string{DefaultBroker}},
		Node:    Node{DataDir: filepath.Join(os.TempDir(), "kasync-dev-data")},
		Tenants: []Tenant{{Name: DefaultTenant}},
		Functions: []Function{{
			Name:   DemoFunction,
			Tenant: DefaultTenant,
			Submit: true,
		}},
		Tailers: []Tailer{{
			Name:     DemoTailer,
			Topic:    DemoTopic,
			Function: DemoFunction,
		}},
	}
	return c.WithDefaults()
}
