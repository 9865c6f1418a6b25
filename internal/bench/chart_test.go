package bench

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sampleReport is a full run: five modes, Asynq skipped, with lateness.
func sampleReport() *Report {
	ms := func(f float64) Duration { return Duration(time.Duration(f * float64(time.Millisecond))) }
	return &Report{
		Started: time.Date(2025, 3, 14, 9, 26, 0, 0, time.UTC),
		Took:    Duration(4*time.Minute + 12*time.Second),
		Machine: Machine{
			CPU: "AMD EPYC 7763 64-Core Processor", Cores: 16, GOMAXPROCS: 16,
			GoVersion: "go1.26.8", OS: "linux/amd64", Kernel: "6.8.0",
			Broker: "embedded (kfake) in its own process",
		},
		Settings: Settings{
			Records: 2_000_000, AsynqRecords: 200_000, Size: 256, Partitions: 16, Keys: 1000,
			Concurrency: 64, LatencyFraction: 0.5, LatencyMaxRate: 200_000,
			LatencyDuration: Duration(30 * time.Second),
		},
		Rows: []Row{
			{
				Mode: ModeRaw, Description: "franz-go consumer group, no work", Records: 2_000_000,
				Rate: 2_010_000, CPUPerMillion: 1.9, BrokerCPUPerMillion: 3.1, PeakRSS: 61 << 20,
				Latency: &LatencyFigures{Offered: 200_000, Achieved: 199_800, Count: 5_994_000,
					P50: ms(0.6), P99: ms(2.9), P999: ms(7.8), Max: ms(19)},
			},
			{
				Mode: ModeInline, Description: "hand-written franz-go loop", Records: 2_000_000,
				Rate: 1_520_000, CPUPerMillion: 2.4, PeakRSS: 74 << 20,
				Latency: &LatencyFigures{Offered: 200_000, Achieved: 200_000, Count: 6_000_000,
					P50: ms(0.8), P99: ms(4.2), P999: ms(11), Max: ms(31)},
			},
			{
				Mode: ModeInProcess, Description: "tailer + scheduler in one process", Records: 2_000_000,
				Rate: 412_000, CPUPerMillion: 6.3, PeakRSS: 143 << 20,
				Latency: &LatencyFigures{Offered: 200_000, Achieved: 199_900, Count: 5_997_000,
					P50: ms(1.3), P99: ms(8.7), P999: ms(24), Max: ms(88)},
			},
			{
				Mode: ModeSplit, Description: "tailer, scheduler and runtime split over gRPC", Records: 2_000_000,
				Rate: 168_000, CPUPerMillion: 11.8, PeakRSS: 212 << 20,
				Latency: &LatencyFigures{Offered: 84_000, Achieved: 61_000, Count: 1_830_000,
					P50: ms(2.7), P99: ms(16.4), P999: ms(140), Max: ms(1300)},
			},
			{Mode: ModeAsynq, Description: "Asynq on Redis", Skipped: "no redis-server on PATH"},
		},
		Ratios: map[string]float64{
			"kasync-in-process/raw-franz-go": 0.205,
			"kasync-split/raw-franz-go":      0.0836,
			"kasync-in-process/asynq":        36.5,
		},
		Lateness: &Lateness{
			Ladder:  []Duration{ms(1), ms(5), ms(25), ms(100)},
			Backoff: ms(5), Offered: 20_000, Retries: 1_200_000,
			P50: ms(0.4), P99: ms(2.1), Max: ms(6.3), Settings: "kasync-in-process, 60s",
		},
	}
}

func decodeChart(t *testing.T, r *Report) image.Image {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteChart(&buf, r))
	img, err := png.Decode(&buf)
	require.NoError(t, err)
	return img
}

// countColor counts the pixels of img that are exactly c.
func countColor(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) == c {
				n++
			}
		}
	}
	return n
}

func TestWriteChart(t *testing.T) {
	t.Parallel()
	r := sampleReport()
	var buf bytes.Buffer
	require.NoError(t, WriteChart(&buf, r))
	if path := os.Getenv("KASYNC_CHART_SAMPLE"); path != "" {
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	img, err := png.Decode(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)

	b := img.Bounds()
	require.Equal(t, chartWidth, b.Dx())
	require.Greater(t, b.Dy(), 500)
	require.Less(t, b.Dy(), chartHeightBound(r))

	// The bar area has something drawn in it.
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := barLeft + 1; x < barRight; x++ {
			if color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) != colorBackground {
				nonWhite++
			}
		}
	}
	require.Greater(t, nonWhite, 10_000)

	// Every mode that ran has a bar of its colour: 22 px high, and longer the faster.
	for _, row := range r.Rows[:4] {
		require.Greater(t, countColor(img, modeColor(row.Mode)), 22*50, row.Mode)
	}
	require.Greater(t, countColor(img, modeColor(ModeRaw)), countColor(img, modeColor(ModeSplit)))
	// The skipped mode has none.
	require.Zero(t, countColor(img, modeColor(ModeAsynq)))
}

func TestWriteChartEmpty(t *testing.T) {
	t.Parallel()
	for name, r := range map[string]*Report{
		"zero":    {},
		"skipped": {Rows: []Row{{Mode: ModeAsynq, Skipped: "no redis-server"}}, Lateness: &Lateness{Error: "boom"}},
		"odd values": {Rows: []Row{
			{Mode: ModeRaw, Rate: math.Inf(1), Latency: &LatencyFigures{P50: -1, P99: 0, P999: Duration(time.Hour)}},
			{Mode: "kasync-other", Rate: math.NaN()},
			{Mode: "other", Rate: 0.5, Latency: &LatencyFigures{P50: 1, P99: 10, P999: 100}},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			img := decodeChart(t, r)
			require.Equal(t, chartWidth, img.Bounds().Dx())
			require.Greater(t, img.Bounds().Dy(), 100)
		})
	}
	require.Error(t, WriteChart(&bytes.Buffer{}, nil))
}

func TestFormatCount(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{
		0: "0", 0.5: "0.5", 7: "7", 950: "950", 999.7: "1k", 1000: "1k", 11_300: "11.3k",
		11_349: "11.3k", 412_000: "412k", 999_600: "1M", 1_520_000: "1.52M", 2_000_000: "2M",
		10_000_000: "10M", 3.4e9: "3.4G", -1500: "-1.5k",
	} {
		require.Equal(t, want, formatCount(v), "%v", v)
	}
	require.Equal(t, "1.52M/s", formatRate(1_520_000))
	require.Equal(t, "NaN", formatCount(math.NaN()))
	require.Equal(t, "+Inf", formatCount(math.Inf(1)))
}

func TestFormatLatency(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                          "0",
		500:                        "500ns",
		4500:                       "4.5µs",
		45 * time.Microsecond:      "45µs",
		100 * time.Microsecond:     "0.1ms",
		840 * time.Microsecond:     "0.8ms",
		time.Millisecond:           "1ms",
		4200 * time.Microsecond:    "4.2ms",
		9980 * time.Microsecond:    "10ms",
		12_340 * time.Microsecond:  "12.3ms",
		350 * time.Millisecond:     "350ms",
		999_700 * time.Microsecond: "1s",
		1500 * time.Millisecond:    "1.5s",
		-2 * time.Millisecond:      "-2ms",
	} {
		require.Equal(t, want, formatLatency(d), "%v", d)
	}
}

func TestFormatRatioAndBytes(t *testing.T) {
	t.Parallel()
	require.Equal(t, "0.93×", formatRatio(0.93))
	require.Equal(t, "0.2×", formatRatio(0.2004))
	require.Equal(t, "0.0836×", formatRatio(0.08361))
	require.Equal(t, "12.4×", formatRatio(12.41))
	require.Equal(t, "250×", formatRatio(250.2))

	require.Equal(t, "256 B", formatBytes(256))
	require.Equal(t, "1.5 KiB", formatBytes(1536))
	require.Equal(t, "85 MiB", formatBytes(85<<20))
	require.Equal(t, "2 GiB", formatBytes(2<<30))
}

func TestRatioNotes(t *testing.T) {
	t.Parallel()
	ratios := map[string]float64{
		"kasync-in-process/asynq": 36.5, "kasync-in-process/raw-franz-go": 0.205,
		"kasync-split/raw-franz-go": 0.08, "kasync-in-processX/raw-franz-go": 9,
	}
	require.Equal(t, "0.205× raw-franz-go, 36.5× asynq", ratioNotes(ModeInProcess, ratios))
	require.Equal(t, "0.08× raw-franz-go", ratioNotes(ModeSplit, ratios))
	require.Empty(t, ratioNotes(ModeRaw, ratios))
}

func TestLogAxis(t *testing.T) {
	t.Parallel()
	a := newLogAxis([]float64{11_300, 2_000_000, 0, math.NaN(), math.Inf(1)}, 1e4, 1e6, 100, 500)
	require.Equal(t, 1e3, a.lo)
	require.Equal(t, 1e7, a.hi)
	require.Equal(t, []float64{1e3, 1e4, 1e5, 1e6, 1e7}, a.decades())
	require.Equal(t, 100, a.x(1e3))
	require.Equal(t, 100, a.x(1))
	require.Equal(t, 200, a.x(1e4))
	require.Equal(t, 500, a.x(1e7))
	require.Equal(t, 500, a.x(1e9))

	d := newLogAxis(nil, 1e-4, 1, 0, 400)
	require.Equal(t, 200, d.x(0.01)) // 10 ms is the middle of 0.1 ms … 1 s
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", truncate("abc", 3))
	require.Equal(t, "ab…", truncate("abcd", 3))
	require.Equal(t, "", truncate("abcd", 0))
	require.Equal(t, "µ…", truncate("µµµ", 2))
}
