package bench

import (
	"fmt"
	"slices"
)

// aggregate folds the rows of several runs (runs[r][i] is mode i of run r) into one row
// per mode: the median of each figure over the runs that succeeded, with every run's
// rate in Rates for the spread. A mode that failed or was skipped in every run keeps
// the first run's reason.
func aggregate(runs [][]Row) []Row {
	if len(runs) == 0 {
		return nil
	}
	out := make([]Row, len(runs[0]))
	for i := range runs[0] {
		var ok []Row
		for _, run := range runs {
			if i < len(run) && run[i].Error == "" && run[i].Skipped == "" {
				ok = append(ok, run[i])
			}
		}
		if len(ok) == 0 {
			out[i] = runs[0][i]
			continue
		}
		row := Row{Mode: ok[0].Mode, Description: ok[0].Description, Records: ok[0].Records}
		if failed := len(runs) - len(ok); failed > 0 {
			for _, run := range runs {
				if run[i].Error != "" {
					row.Error = fmt.Sprintf("%d of %d runs failed; the first: %s", failed, len(runs), run[i].Error)
					break
				}
			}
		}
		pick := func(f func(Row) float64) float64 {
			v := make([]float64, len(ok))
			for j, r := range ok {
				v[j] = f(r)
			}
			return median(v)
		}
		row.Rate = pick(func(r Row) float64 { return r.Rate })
		row.CPUPerMillion = pick(func(r Row) float64 { return r.CPUPerMillion })
		row.BrokerCPUPerMillion = pick(func(r Row) float64 { return r.BrokerCPUPerMillion })
		row.PeakRSS = int64(pick(func(r Row) float64 { return float64(r.PeakRSS) }))
		if len(runs) > 1 {
			for _, r := range ok {
				row.Rates = append(row.Rates, r.Rate)
			}
		}
		var lat []Row
		for _, r := range ok {
			if r.Latency != nil {
				lat = append(lat, r)
			}
		}
		if len(lat) > 0 {
			lp := func(f func(*LatencyFigures) float64) float64 {
				v := make([]float64, len(lat))
				for j, r := range lat {
					v[j] = f(r.Latency)
				}
				return median(v)
			}
			row.Latency = &LatencyFigures{
				Offered:  lp(func(l *LatencyFigures) float64 { return l.Offered }),
				Achieved: lp(func(l *LatencyFigures) float64 { return l.Achieved }),
				Count:    int64(lp(func(l *LatencyFigures) float64 { return float64(l.Count) })),
				P50:      Duration(lp(func(l *LatencyFigures) float64 { return float64(l.P50) })),
				P99:      Duration(lp(func(l *LatencyFigures) float64 { return float64(l.P99) })),
				P999:     Duration(lp(func(l *LatencyFigures) float64 { return float64(l.P999) })),
				Max:      Duration(lp(func(l *LatencyFigures) float64 { return float64(l.Max) })),
				AckP99:   Duration(lp(func(l *LatencyFigures) float64 { return float64(l.AckP99) })),
			}
			if len(runs) > 1 {
				for _, r := range lat {
					row.LatencyP99s = append(row.LatencyP99s, r.Latency.P99)
				}
			}
		}
		out[i] = row
	}
	return out
}

// medianRatios computes the ratios of each run, then their median and range: a ratio
// is taken within one run, where both rows met the same machine state.
func medianRatios(runs [][]Row) (map[string]float64, map[string][2]float64) {
	per := map[string][]float64{}
	for _, run := range runs {
		for k, v := range ratios(run) {
			per[k] = append(per[k], v)
		}
	}
	med := map[string]float64{}
	var rng map[string][2]float64
	if len(runs) > 1 {
		rng = map[string][2]float64{}
	}
	for k, v := range per {
		med[k] = median(v)
		if rng != nil {
			rng[k] = [2]float64{slices.Min(v), slices.Max(v)}
		}
	}
	return med, rng
}

// median of v (the mean of the middle two for an even count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
