package bench

import (
	"time"
)

// Report is one run of the harness: what was measured, on what, with which settings.
// It is written as report.json and drawn as chart.png by --out.
type Report struct {
	Started  time.Time `json:"started"`
	Took     Duration  `json:"took"`
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	Rows     []Row     `json:"rows"`
	// Ratios are the throughput ratios the targets are stated in, e.g.
	// "kasync-in-process/raw-franz-go"; a ratio whose rows did not both run is absent.
	Ratios map[string]float64 `json:"ratios"`
	// RatioRanges are the lowest and highest of each ratio over the runs (Runs > 1).
	RatioRanges map[string][2]float64 `json:"ratio_ranges,omitempty"`
	Lateness    *Lateness             `json:"lateness,omitempty"`
	// ProducerRate is how fast the harness produced the backlog, records/s: latency
	// phases offer at most LatencyFraction of it.
	ProducerRate float64 `json:"producer_rate,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Kernel     string `json:"kernel,omitempty"`
	Broker     string `json:"broker"` // "embedded (kfake) in its own process" or the --brokers list
}

// Settings are the workload's shape.
type Settings struct {
	Runs         int `json:"runs"`          // each mode's runs; the rows are medians
	Records      int `json:"records"`       // per Kafka mode, in the throughput phase
	AsynqRecords int `json:"asynq_records"` // Asynq's throughput phase
	Size         int `json:"size"`          // payload bytes
	Partitions   int `json:"partitions"`    //
	Keys         int `json:"keys"`          // distinct keys, round robin
	Concurrency  int `json:"concurrency"`   // kasync function / Asynq server concurrency
	// ChildGOMAXPROCS is the GOMAXPROCS of the measured processes; 0: the Go default.
	ChildGOMAXPROCS int      `json:"child_gomaxprocs,omitempty"`
	LatencyFraction float64  `json:"latency_fraction"` // offered rate = this × the mode's peak
	LatencyMaxRate  float64  `json:"latency_max_rate"` // ... at most this many per second
	LatencyDuration Duration `json:"latency_duration"`
}

// Mode names, in the order they run.
const (
	ModeRaw       = "raw-franz-go"
	ModeInline    = "hand-written"
	ModeInProcess = "kasync-in-process"
	ModeSplit     = "kasync-split"
	ModeAsynq     = "asynq"
)

// Row is one mode's figures.
type Row struct {
	Mode        string `json:"mode"`
	Description string `json:"description"`
	// Skipped says why the mode did not run (e.g. no redis-server); Error why it failed.
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`

	// Throughput phase: a backlog of Records read as fast as the mode can.
	Records int64   `json:"records"`
	Rate    float64 `json:"rate"` // tasks/s between the first and the last function start
	// CPUPerMillion is user+system CPU seconds of the mode's processes (not the
	// broker's) per million tasks; BrokerCPUPerMillion the broker's (Kafka or Redis).
	CPUPerMillion       float64 `json:"cpu_s_per_million"`
	BrokerCPUPerMillion float64 `json:"broker_cpu_s_per_million"`
	// PeakRSS is the largest resident set of the mode's processes, summed over them.
	PeakRSS int64 `json:"peak_rss_bytes"`

	// Latency phase: produce → function start at a fixed offered rate.
	Latency *LatencyFigures `json:"latency,omitempty"`

	// With several runs: every run's rate and latency p99, for the spread; the figures
	// above are medians over the runs that succeeded.
	Rates       []float64  `json:"rates,omitempty"`
	LatencyP99s []Duration `json:"latency_p99s,omitempty"`
}

// LatencyFigures are the latency phase's results.
type LatencyFigures struct {
	Offered  float64  `json:"offered_rate"`  // asked of the producer, per second
	Achieved float64  `json:"achieved_rate"` // produced, per second
	Count    int64    `json:"count"`
	P50      Duration `json:"p50"`
	P99      Duration `json:"p99"`
	P999     Duration `json:"p999"`
	Max      Duration `json:"max"`
	// AckP99 is the 99th percentile of produce → broker acknowledgement of the same
	// records, as the harness's producer saw it: the part of the latency spent before
	// a consumer could read the record at all, mostly the producer and broker queueing
	// for the machine's CPU. Zero for Asynq (no Kafka producer).
	AckP99 Duration `json:"ack_p99,omitempty"`
}

// Lateness is the delay-rung measurement: retries on a millisecond ladder under load.
type Lateness struct {
	Ladder   []Duration `json:"ladder"`
	Backoff  Duration   `json:"backoff"`
	Offered  float64    `json:"offered_rate"`
	Retries  int64      `json:"retries"`
	Early    int64      `json:"early"` // retries that started before their due time: must be 0
	P50      Duration   `json:"p50"`
	P99      Duration   `json:"p99"`
	Max      Duration   `json:"max"`
	Error    string     `json:"error,omitempty"`
	Skipped  string     `json:"skipped,omitempty"`
	Settings string     `json:"settings,omitempty"`
}

// Duration is a time.Duration that reads and writes as a string ("1.5ms") in JSON.
type Duration time.Duration

// String is time.Duration's.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d like time.Duration.String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a time.ParseDuration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
