package config

import (
	"math"
	"strings"
	"time"
)

// Defaults of the scheduler's settings.
const (
	// DefaultTenant is the tenant of a function that names none. A tenants entry with
	// this name sets its weight and quotas.
	DefaultTenant = "default"
	// DefaultTenantWeight is a tenant's share of the scheduler when capacity is
	// contended, relative to the others' weights.
	DefaultTenantWeight = 1
	// MaxTenantWeight bounds tenants[].weight.
	MaxTenantWeight = 1000
	// DefaultWorkerHeartbeatTimeout is how long a task on an SDK worker may go without a
	// heartbeat before it is taken as lost and run elsewhere (rpc.DefaultHeartbeatTimeout).
	DefaultWorkerHeartbeatTimeout = 15 * time.Second
	// MinWorkerHeartbeatTimeout is the least scheduler.worker_heartbeat_timeout.
	MinWorkerHeartbeatTimeout = 10 * time.Millisecond
	// DefaultAdaptiveMin is the least concurrency the adaptive limit shrinks a function to.
	DefaultAdaptiveMin = 1
)

// Scheduler configures what the scheduler shares between all functions.
type Scheduler struct {
	// MaxConcurrency bounds the attempts running at once over every function of the
	// node; when they contend for it, tenants share it by weight. 0 (the default) means
	// no bound beyond each function's concurrency.
	MaxConcurrency int `yaml:"max_concurrency"`
	// WorkerHeartbeatTimeout: a task on an SDK worker with no heartbeat for this long is
	// taken as lost and dispatched again (default 15s; SDK workers heartbeat every 5s
	// or a third of it, whichever is sooner).
	WorkerHeartbeatTimeout Duration `yaml:"worker_heartbeat_timeout"`
}

// Tenant is a group of functions that shares the scheduler with the others by weight
// and may have quotas of its own.
type Tenant struct {
	Name string `yaml:"name"`
	// Weight is the tenant's share of contended capacity, relative to the other
	// tenants' (default 1, at most MaxTenantWeight).
	Weight int `yaml:"weight"`
	// Concurrency bounds the attempts of all its functions running at once; 0 means no
	// quota.
	Concurrency int `yaml:"concurrency"`
	// Rate bounds the attempts of all its functions started per second; 0 means no quota.
	Rate float64 `yaml:"rate"`
}

// Adaptive configures a function's adaptive concurrency limit, which protects a slow
// or overloaded downstream: it halves on an overload (HTTP 429/503, a timeout) and grows
// back by one per round of successes, between min and the function's concurrency.
type Adaptive struct {
	// Disabled turns it off: the function always runs up to its concurrency.
	Disabled bool `yaml:"disabled"`
	// Min is the least the limit shrinks to (default 1, at most the concurrency).
	Min int `yaml:"min"`
	// LatencyFactor, when above 1, also shrinks the limit when the function's recent
	// latency passes this multiple of its usual latency; 0 (the default) turns that off.
	LatencyFactor float64 `yaml:"latency_factor"`
}

// FunctionTLS configures TLS for an https function url. Empty files mean: system roots,
// no client certificate.
type FunctionTLS struct {
	CAFile   string `yaml:"ca_file,omitempty"`
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
}

// TenantOf is the tenant function f belongs to.
func (f Function) TenantOf() string {
	if f.Tenant == "" {
		return DefaultTenant
	}
	return f.Tenant
}

func (c *Config) schedulingDefaults() {
	setDuration(&c.Scheduler.WorkerHeartbeatTimeout, DefaultWorkerHeartbeatTimeout)
	for i := range c.Tenants {
		setInt(&c.Tenants[i].Weight, DefaultTenantWeight)
	}
	for i := range c.Functions {
		setInt(&c.Functions[i].Adaptive.Min, DefaultAdaptiveMin)
	}
}

func (c *Config) validateScheduling(l *problemList) {
	if c.Scheduler.MaxConcurrency < 0 {
		l.add("scheduler.max_concurrency", "%d is not allowed; use a positive bound, or 0 for none", c.Scheduler.MaxConcurrency)
	}
	if checkPositive(l, "scheduler.worker_heartbeat_timeout", c.Scheduler.WorkerHeartbeatTimeout, "15s") &&
		c.Scheduler.WorkerHeartbeatTimeout < Duration(MinWorkerHeartbeatTimeout) {
		l.add("scheduler.worker_heartbeat_timeout", "%s is too short; use at least %s, like 15s",
			c.Scheduler.WorkerHeartbeatTimeout, Duration(MinWorkerHeartbeatTimeout))
	}
	tenants := map[string]int{}
	for i, t := range c.Tenants {
		p := indexPath("tenants", i)
		if checkName(l, p+".name", t.Name, "tenant") {
			if j, dup := tenants[t.Name]; dup {
				l.add(p+".name", "%q is already the name of tenants[%d]; tenant names must be unique", t.Name, j)
			} else {
				tenants[t.Name] = i
			}
		}
		if t.Weight < 1 || t.Weight > MaxTenantWeight {
			l.add(p+".weight", "%d is not allowed; use 1 to %d (default %d)", t.Weight, MaxTenantWeight, DefaultTenantWeight)
		}
		if t.Concurrency < 0 {
			l.add(p+".concurrency", "%d is not allowed; use a positive quota, or 0 for none", t.Concurrency)
		}
		if t.Rate < 0 || math.IsNaN(t.Rate) || math.IsInf(t.Rate, 0) {
			l.add(p+".rate", "%v is not allowed; use starts per second, or 0 for no quota", t.Rate)
		}
	}
	for i, f := range c.Functions {
		p := indexPath("functions", i)
		if _, ok := tenants[f.Tenant]; f.Tenant != "" && f.Tenant != DefaultTenant && !ok {
			l.add(p+".tenant", "%q is not in tenants; add it there (name, weight) or leave tenant out for %q",
				f.Tenant, DefaultTenant)
		}
		a := f.Adaptive
		if a.Min < 1 || (f.Concurrency >= 1 && a.Min > f.Concurrency) {
			l.add(p+".adaptive.min", "%d is not allowed; use 1 to the function's concurrency (%d)", a.Min, f.Concurrency)
		}
		if a.LatencyFactor != 0 && !(a.LatencyFactor > 1 && a.LatencyFactor <= 100) { // also catches NaN
			l.add(p+".adaptive.latency_factor", "%v is not allowed; use a factor above 1 like 2, or 0 to leave latency out", a.LatencyFactor)
		}
		if t := f.TLS; t != nil {
			if !strings.HasPrefix(strings.ToLower(f.URL), "https://") {
				l.add(p+".tls", "is set but url is not https://; use an https url, or remove tls")
			}
			checkFile(l, p+".tls.ca_file", t.CAFile)
			checkFile(l, p+".tls.cert_file", t.CertFile)
			checkFile(l, p+".tls.key_file", t.KeyFile)
			if (t.CertFile == "") != (t.KeyFile == "") {
				l.add(p+".tls", "cert_file and key_file go together; set both for a client certificate, or neither")
			}
		}
	}
}
