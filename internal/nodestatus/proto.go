package nodestatus

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
)

// ToProto is s as the gRPC status API answers it (kasync.v1.NodeStatus). It always
// marshals: a string that is not valid UTF-8 (proto3 strings must be) has its bad
// bytes replaced by U+FFFD, and a zero time is sent as no timestamp.
func ToProto(s Status) *kasyncv1.NodeStatus {
	out := &kasyncv1.NodeStatus{
		Taken:    timestamp(s.Taken),
		Roles:    validStrings(s.Roles),
		NotReady: validStrings(s.NotReady),
		Problems: validStrings(s.Problems),
		DeadLetters: &kasyncv1.NodeStatus_DeadLetters{
			Topic:      valid(s.DeadLetters.Topic),
			LatestRead: s.DeadLetters.Latest != nil,
		},
	}
	for _, f := range s.Functions {
		pf := &kasyncv1.NodeStatus_Function{Name: valid(f.Name), Tenant: valid(f.Tenant), Scheduled: f.Scheduled,
			Concurrency: int64(f.Concurrency), Limit: int64(f.Limit), Running: int64(f.Running), Queued: int64(f.Queued),
			Succeeded: f.Succeeded, Retriable: f.Retriable, Fatal: f.Fatal}
		if f.HeldUntil != nil {
			pf.HeldUntil = timestamppb.New(*f.HeldUntil)
		}
		if d := f.Durations; d != nil {
			pf.Durations = &kasyncv1.NodeStatus_Durations{BoundsSeconds: d.BoundsSeconds, Counts: d.Counts}
		}
		if g := f.StormGuard; g != nil {
			pf.StormGuard = &kasyncv1.NodeStatus_StormGuard{Active: g.Active, Outcomes: int64(g.Outcomes), Failures: int64(g.Failures), Trips: g.Trips}
			if g.Since != nil {
				pf.StormGuard.Since = timestamppb.New(*g.Since)
			}
		}
		out.Functions = append(out.Functions, pf)
	}
	for _, t := range s.Tailers {
		pt := &kasyncv1.NodeStatus_Tailer{Name: valid(t.Name), Topic: valid(t.Topic), Function: valid(t.Function), Group: valid(t.Group),
			Member: t.Member, InFlight: t.InFlight, Ingest: t.Ingest}
		for _, p := range t.Partitions {
			pt.Partitions = append(pt.Partitions, &kasyncv1.NodeStatus_Partition{Partition: p.Partition, LagRecords: p.LagRecords, LagSeconds: p.LagSeconds})
		}
		out.Tailers = append(out.Tailers, pt)
	}
	for _, r := range s.Rungs {
		pr := &kasyncv1.NodeStatus_Rung{Name: valid(r.Name), Topic: valid(r.Topic), DelaySeconds: r.DelaySeconds,
			Depth: r.Depth, Reading: r.Reading, Held: r.Held, InFlight: r.InFlight, LatenessSeconds: r.LatenessSeconds}
		if r.OldestDue != nil {
			pr.OldestDue = timestamppb.New(*r.OldestDue)
		}
		out.Rungs = append(out.Rungs, pr)
	}
	for _, c := range s.DeadLetters.Counts {
		out.DeadLetters.Counts = append(out.DeadLetters.Counts, &kasyncv1.NodeStatus_DeadLetterCount{Function: valid(c.Function), Reason: valid(c.Reason), Count: c.Count})
	}
	for _, d := range s.DeadLetters.Latest {
		out.DeadLetters.Latest = append(out.DeadLetters.Latest, &kasyncv1.NodeStatus_DeadLetter{Partition: d.Partition, Offset: d.Offset,
			Time: timestamp(d.Time), Function: valid(d.Function), Reason: valid(d.Reason), Error: valid(d.Error), Attempt: int64(d.Attempt),
			Origin: valid(d.Origin), Key: valid(d.Key)})
	}
	return out
}

// FromProto is the Status that p carries, in the form the node builds it: the lists
// the JSON always shows (roles, functions, tailers, rungs, partitions) are empty rather
// than nil; NotReady, Problems and the dead-letter counts are nil when empty; the
// latest dead letters are nil unless p says they were read; times are UTC. So
// FromProto(ToProto(s)) == s for every s a node builds (TestProtoRoundTrip).
//
// It fails, naming the field, on a timestamp out of range or a duration histogram
// whose counts do not match its bounds: p did not come from a kasync node.
func FromProto(p *kasyncv1.NodeStatus) (Status, error) {
	var errs []error
	at := func(field string, ts *timestamppb.Timestamp) time.Time {
		if ts == nil {
			return time.Time{}
		}
		if err := ts.CheckValid(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			return time.Time{}
		}
		return ts.AsTime()
	}
	s := Status{
		Taken:     at("taken", p.GetTaken()),
		Roles:     append([]string{}, p.GetRoles()...),
		NotReady:  nilIfEmpty(p.GetNotReady()),
		Problems:  nilIfEmpty(p.GetProblems()),
		Functions: make([]Function, 0, len(p.GetFunctions())),
		Tailers:   make([]Tailer, 0, len(p.GetTailers())),
		Rungs:     make([]Rung, 0, len(p.GetRungs())),
	}
	for i, pf := range p.GetFunctions() {
		field := fmt.Sprintf("functions[%d]", i)
		f := Function{Name: pf.GetName(), Tenant: pf.GetTenant(), Scheduled: pf.GetScheduled(), Concurrency: int(pf.GetConcurrency()),
			Limit: int(pf.GetLimit()), Running: int(pf.GetRunning()), Queued: int(pf.GetQueued()),
			Succeeded: pf.GetSucceeded(), Retriable: pf.GetRetriable(), Fatal: pf.GetFatal()}
		if pf.GetHeldUntil() != nil {
			t := at(field+".held_until", pf.GetHeldUntil())
			f.HeldUntil = &t
		}
		if d := pf.GetDurations(); d != nil {
			if len(d.GetCounts()) != len(d.GetBoundsSeconds())+1 {
				errs = append(errs, fmt.Errorf("%s.durations: %d counts for %d bounds; want one more count than bounds",
					field, len(d.GetCounts()), len(d.GetBoundsSeconds())))
			}
			f.Durations = &Durations{BoundsSeconds: append([]float64{}, d.GetBoundsSeconds()...), Counts: append([]uint64{}, d.GetCounts()...)}
		}
		if g := pf.GetStormGuard(); g != nil {
			f.StormGuard = &StormGuard{Active: g.GetActive(), Outcomes: int(g.GetOutcomes()), Failures: int(g.GetFailures()), Trips: g.GetTrips()}
			if g.GetSince() != nil {
				t := at(field+".storm_guard.since", g.GetSince())
				f.StormGuard.Since = &t
			}
		}
		s.Functions = append(s.Functions, f)
	}
	for _, pt := range p.GetTailers() {
		t := Tailer{Name: pt.GetName(), Topic: pt.GetTopic(), Function: pt.GetFunction(), Group: pt.GetGroup(), Member: pt.GetMember(),
			InFlight: pt.GetInFlight(), Ingest: pt.GetIngest(), Partitions: make([]Partition, 0, len(pt.GetPartitions()))}
		for _, pp := range pt.GetPartitions() {
			t.Partitions = append(t.Partitions, Partition{Partition: pp.GetPartition(), LagRecords: pp.GetLagRecords(), LagSeconds: pp.GetLagSeconds()})
		}
		s.Tailers = append(s.Tailers, t)
	}
	for i, pr := range p.GetRungs() {
		field := fmt.Sprintf("rungs[%d]", i)
		r := Rung{Name: pr.GetName(), Topic: pr.GetTopic(), DelaySeconds: pr.GetDelaySeconds(), Reading: pr.GetReading(),
			Held: pr.GetHeld(), InFlight: pr.GetInFlight()}
		if pr.Depth != nil {
			d := pr.GetDepth()
			r.Depth = &d
		}
		if pr.GetOldestDue() != nil {
			t := at(field+".oldest_due", pr.GetOldestDue())
			r.OldestDue = &t
		}
		if pr.LatenessSeconds != nil {
			l := pr.GetLatenessSeconds()
			r.LatenessSeconds = &l
		}
		// A node sets both or neither: lateness is measured from the oldest due time.
		if (r.OldestDue == nil) != (r.LatenessSeconds == nil) {
			errs = append(errs, fmt.Errorf("%s: oldest_due and lateness_seconds come together; got only one of them", field))
		}
		s.Rungs = append(s.Rungs, r)
	}
	dl := p.GetDeadLetters()
	s.DeadLetters.Topic = dl.GetTopic()
	for _, c := range dl.GetCounts() {
		s.DeadLetters.Counts = append(s.DeadLetters.Counts, DeadLetterCount{Function: c.GetFunction(), Reason: c.GetReason(), Count: c.GetCount()})
	}
	if dl.GetLatestRead() {
		s.DeadLetters.Latest = make([]DeadLetter, 0, len(dl.GetLatest()))
		for i, d := range dl.GetLatest() {
			s.DeadLetters.Latest = append(s.DeadLetters.Latest, DeadLetter{Partition: d.GetPartition(), Offset: d.GetOffset(),
				Time: at(fmt.Sprintf("dead_letters.latest[%d].time", i), d.GetTime()), Function: d.GetFunction(), Reason: d.GetReason(),
				Error: d.GetError(), Attempt: int(d.GetAttempt()), Origin: d.GetOrigin(), Key: d.GetKey()})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Status{}, fmt.Errorf("nodestatus: %w", err)
	}
	return s, nil
}

// timestamp is t as a Timestamp; nil for the zero time, which FromProto gives back.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func valid(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func validStrings(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = valid(s)
	}
	return out
}

func nilIfEmpty(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	return append([]string(nil), list...)
}
