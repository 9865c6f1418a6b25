package scheduler

// fairCostAlpha weighs a finished attempt's slot time in its tenant's expected cost.
const fairCostAlpha = 0.1

// fair is the pure core of tenant sharing: it grants slots (the right to run one
// attempt) to tenants, within a global capacity and each tenant's quota, by weighted
// fair queueing on slot time. No locks, no clock (costs are passed in), no goroutines.
//
// Each tenant has a virtual time, pass. A grant charges the tenant's expected cost (a
// moving average of its slots' hold times) divided by its weight, and the release
// corrects the charge to the slot's real hold time, so over time each backlogged
// tenant's pass advances by the slot time it used over its weight. A freed slot goes
// to the waiting tenant, under its quota, with the lowest pass (ties in round-robin
// order from the tenant granted last: a tenant that starts asking, and so gets the
// busy tenant's pass, goes before it). Backlogged tenants so share slot time by weight, whether their attempts take
// microseconds or seconds. A tenant that had no waiting request does not bank credit:
// when it asks again, its pass jumps up to the lowest pass of the waiting tenants (the
// system's virtual time when none waits).
//
// The core is work-conserving: after every call, no waiting tenant could be granted a
// slot (TestFairModel).
type fair struct {
	capacity int // 0: no global cap
	used     int
	vtime    float64 // the pass of the latest grant, at its grant
	last     int     // the tenant granted last
	tenants  []fairTenant
}

type fairTenant struct {
	weight  float64
	quota   int // 0: none
	running int
	waiting int
	pass    float64
	cost    float64 // expected slot time of one grant
}

// newFair returns a core for len(weights) tenants (weights >= 1, quotas >= 0, 0 for
// none) and a global capacity (0 for none). initialCost is a tenant's expected slot
// time before any was measured, in the unit Release is given.
func newFair(capacity int, initialCost float64, weights, quotas []int) fair {
	f := fair{capacity: capacity, tenants: make([]fairTenant, len(weights))}
	for i, w := range weights {
		f.tenants[i] = fairTenant{weight: float64(w), quota: quotas[i], cost: initialCost}
	}
	return f
}

// Acquire asks for a slot for tenant t. When it is granted at once, ok is true and
// charge must be passed to Release. Otherwise t waits: the slot comes from a later
// Release, or the wait is given up with Cancel.
func (f *fair) Acquire(t int) (charge float64, ok bool) {
	ft := &f.tenants[t]
	if ft.waiting == 0 {
		ft.pass = max(ft.pass, f.floor(t))
		if f.free(t) {
			return f.grant(t), true
		}
	}
	ft.waiting++
	return 0, false
}

// Cancel gives up one waiting request of tenant t.
func (f *fair) Cancel(t int) {
	f.tenants[t].waiting--
}

// Release returns a slot of tenant t that was held for cost and charged charge. If
// the slot goes to a waiting tenant, ok is true, next is that tenant and nextCharge
// the charge of its grant.
func (f *fair) Release(t int, cost, charge float64) (next int, nextCharge float64, ok bool) {
	ft := &f.tenants[t]
	ft.running--
	f.used--
	ft.pass += (cost - charge) / ft.weight
	ft.cost += fairCostAlpha * (cost - ft.cost)
	next = -1
	for k := 1; k <= len(f.tenants); k++ {
		i := (f.last + k) % len(f.tenants)
		c := &f.tenants[i]
		if c.waiting > 0 && f.free(i) && (next < 0 || c.pass < f.tenants[next].pass) {
			next = i
		}
	}
	if next < 0 {
		return -1, 0, false
	}
	f.tenants[next].waiting--
	return next, f.grant(next), true
}

// Running and Waiting are tenant t's granted slots and waiting requests.
func (f *fair) Running(t int) int { return f.tenants[t].running }
func (f *fair) Waiting(t int) int { return f.tenants[t].waiting }

// free reports whether a slot could be granted to t now.
func (f *fair) free(t int) bool {
	ft := &f.tenants[t]
	return (f.capacity == 0 || f.used < f.capacity) && (ft.quota == 0 || ft.running < ft.quota)
}

func (f *fair) grant(t int) float64 {
	ft := &f.tenants[t]
	ft.running++
	f.used++
	f.last = t
	f.vtime = max(f.vtime, ft.pass)
	charge := ft.cost
	ft.pass += charge / ft.weight
	return charge
}

// floor is the lowest pass of the tenants other than t that wait, or the system's
// virtual time when none does: where a tenant that starts asking again begins.
func (f *fair) floor(t int) float64 {
	lowest, found := f.vtime, false
	for i := range f.tenants {
		if i != t && f.tenants[i].waiting > 0 && (!found || f.tenants[i].pass < lowest) {
			lowest, found = f.tenants[i].pass, true
		}
	}
	return lowest
}
