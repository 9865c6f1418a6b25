package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets of the speed issue, reported next to the ratios (never asserted here).
const (
	targetVsRaw   = 0.5
	targetVsAsynq = 20
)

// WriteTable writes the report as the table `kasync bench` prints.
func WriteTable(w io.Writer, r *Report) error {
	s := r.Settings
	fmt.Fprintf(w, "\nkasync bench — %d records of %d bytes, %d partitions, %d keys, concurrency %d (Asynq: %d tasks)\n",
		s.Records, s.Size, s.Partitions, s.Keys, s.Concurrency, s.AsynqRecords)
	m := r.Machine
	fmt.Fprintf(w, "machine: %s, %d cores, %s %s; broker: %s\n", m.CPU, m.Cores, m.GoVersion, m.OS, m.Broker)
	if s.ChildGOMAXPROCS > 0 {
		fmt.Fprintf(w, "measured processes run with GOMAXPROCS=%d\n", s.ChildGOMAXPROCS)
	}
	fmt.Fprintf(w, "latency: produce → function start at %.0f%% of each mode's peak for %s\n", s.LatencyFraction*100, s.LatencyDuration)
	if s.Runs > 1 {
		fmt.Fprintf(w, "figures: medians of %d runs, interleaved; spread is the lowest and highest run\n", s.Runs)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\ttasks/s\tspread\tCPU s/M\tbroker CPU s/M\tpeak RSS\tlatency at\tp50\tp99\tp999\tack p99\t")
	for _, row := range r.Rows {
		switch {
		case row.Skipped != "":
			fmt.Fprintf(tw, "%s\tskipped\t\t\t\t\t\t\t\t\t\t\n", row.Mode)
			continue
		case row.Error != "" && row.Rate == 0:
			fmt.Fprintf(tw, "%s\tfailed\t\t\t\t\t\t\t\t\t\t\n", row.Mode)
			continue
		}
		lat := "\t\t\t\t\t"
		if l := row.Latency; l != nil {
			ack := "-"
			if l.AckP99 > 0 {
				ack = formatLatency(time.Duration(l.AckP99))
			}
			lat = fmt.Sprintf("%s/s\t%s\t%s\t%s\t%s\t", formatCount(l.Achieved), formatLatency(time.Duration(l.P50)),
				formatLatency(time.Duration(l.P99)), formatLatency(time.Duration(l.P999)), ack)
		}
		spread := "-"
		if len(row.Rates) > 1 {
			spread = formatCount(slices.Min(row.Rates)) + "–" + formatCount(slices.Max(row.Rates))
		}
		brokerCPU := "-" // a cluster named with --brokers: not ours to measure
		if row.BrokerCPUPerMillion > 0 {
			brokerCPU = fmt.Sprintf("%.2f", row.BrokerCPUPerMillion)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\t%s\n", row.Mode, formatCount(row.Rate), spread, row.CPUPerMillion,
			brokerCPU, formatBytes(row.PeakRSS), lat)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, row := range r.Rows {
		switch {
		case row.Skipped != "":
			fmt.Fprintf(w, "  %s skipped: %s\n", row.Mode, row.Skipped)
		case row.Error != "":
			fmt.Fprintf(w, "  %s failed: %s\n", row.Mode, row.Error)
		}
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w, "\nthroughput ratios:")
		keys := make([]string, 0, len(r.Ratios))
		for k := range r.Ratios {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			target := ""
			switch {
			case strings.HasPrefix(k, ModeInProcess+"/") && strings.HasSuffix(k, "/"+ModeRaw):
				target = fmt.Sprintf("   (target ≥ %.1f×)", targetVsRaw)
			case strings.HasPrefix(k, ModeSplit+"/") && strings.HasSuffix(k, "/"+ModeAsynq):
				target = fmt.Sprintf("   (target ≥ %.0f×)", float64(targetVsAsynq))
			}
			spread := ""
			if rg, ok := r.RatioRanges[k]; ok {
				spread = fmt.Sprintf(" (%.2f–%.2f)", rg[0], rg[1])
			}
			fmt.Fprintf(w, "  %-36s %6.2f×%s%s\n", k, r.Ratios[k], spread, target)
		}
	}
	if l := r.Lateness; l != nil {
		fmt.Fprintln(w)
		switch {
		case l.Error != "":
			fmt.Fprintf(w, "delay lateness: failed: %s\n", l.Error)
		default:
			ladder := make([]string, len(l.Ladder))
			for i, d := range l.Ladder {
				ladder[i] = formatLatency(time.Duration(d))
			}
			fmt.Fprintf(w, "delay lateness (ladder %s, backoff %s, %s/s offered, %d retries): p50 %s  p99 %s  max %s  early %d\n",
				strings.Join(ladder, "/"), formatLatency(time.Duration(l.Backoff)), formatCount(l.Offered), l.Retries,
				formatLatency(time.Duration(l.P50)), formatLatency(time.Duration(l.P99)), formatLatency(time.Duration(l.Max)), l.Early)
		}
	}
	fmt.Fprintf(w, "\ntook %s\n", time.Duration(r.Took).Round(100*time.Millisecond))
	return nil
}

// WriteOut writes report.json and chart.png into dir, creating it.
func WriteOut(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("bench: --out %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("bench: --out: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "chart.png"))
	if err != nil {
		return fmt.Errorf("bench: --out: %w", err)
	}
	if err := WriteChart(f, r); err != nil {
		_ = f.Close()
		return fmt.Errorf("bench: chart: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: --out: %w", err)
	}
	return nil
}
