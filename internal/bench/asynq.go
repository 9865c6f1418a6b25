package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// findAsynq locates redis-server and the Asynq peer, or says how to get them.
func (h *harness) findAsynq() (redis, peer, missing string) {
	redis = h.o.RedisServer
	if redis == "" {
		if p, err := exec.LookPath("redis-server"); err == nil {
			redis = p
		}
	}
	peer = h.o.AsynqPeer
	if peer == "" {
		for _, c := range []string{filepath.Join(filepath.Dir(h.o.Exe), "kasync-bench-asynq"), "kasync-bench-asynq"} {
			if p, err := exec.LookPath(c); err == nil {
				peer = p
				break
			}
		}
	}
	var why []string
	if redis == "" {
		why = append(why, "no redis-server on PATH (--redis-server)")
	}
	if peer == "" {
		why = append(why, "no kasync-bench-asynq next to kasync or on PATH (--asynq-peer)")
	}
	if len(why) > 0 {
		return "", "", strings.Join(why, "; ") + "; `make bench-peers` installs both"
	}
	return redis, peer, ""
}

// startRedis starts a private redis-server on a free loopback port, without
// persistence, once per run.
func (h *harness) startRedis(bin string) (string, error) {
	if h.redis != nil {
		return h.redisAddr, nil
	}
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	_, port, _ := strings.Cut(addr, ":")
	p, err := startProc("redis-server", bin, []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--loglevel", "warning"}, false, nil)
	if err != nil {
		return "", err
	}
	h.redis = h.track(p)
	if err := waitDial(addr, p, 30*time.Second); err != nil {
		return "", err
	}
	h.redisAddr = addr
	return addr, nil
}

// enqueue runs the peer's enqueue subcommand to its end and returns the rate it
// reports.
func (h *harness) enqueue(ctx context.Context, peer, addr, queue string, n int64, rate float64) (float64, error) {
	args := []string{"enqueue", "--redis", addr, "--queue", queue, "--n", strconv.FormatInt(n, 10),
		"--size", strconv.Itoa(h.o.Size), "--rate", strconv.FormatFloat(rate, 'f', 0, 64)}
	cmd := exec.CommandContext(ctx, peer, args...)
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && len(ee.Stderr) > 0 {
			msg += ": " + strings.TrimSpace(string(ee.Stderr))
		}
		return 0, fmt.Errorf("asynq enqueue: %s", msg)
	}
	var got struct {
		Enqueued int64   `json:"enqueued"`
		Rate     float64 `json:"rate"`
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		return 0, fmt.Errorf("asynq enqueue: its output %q: %w", out, err)
	}
	if got.Enqueued != n {
		return 0, fmt.Errorf("asynq enqueue: enqueued %d of %d", got.Enqueued, n)
	}
	return got.Rate, nil
}

// serve starts the peer's measured serve subcommand.
func (h *harness) serve(peer, addr, queue string, n int64) (*proc, error) {
	p, err := startProc("asynq server", peer, []string{"serve", "--redis", addr, "--queue", queue,
		"--n", strconv.FormatInt(n, 10), "--concurrency", strconv.Itoa(h.o.Concurrency)}, true, h.childEnv())
	if err != nil {
		return nil, err
	}
	return h.track(p), nil
}

// runAsynq measures Asynq: a backlog enqueued first, then served; then a latency phase
// with the enqueuer pacing itself.
func (h *harness) runAsynq(ctx context.Context, row *Row) {
	redis, peer, missing := h.findAsynq()
	if missing != "" {
		row.Skipped = missing
		return
	}
	addr, err := h.startRedis(redis)
	if err != nil {
		row.Error = err.Error()
		return
	}
	n := int64(h.o.AsynqRecords)
	row.Records = n
	h.bar.phase("asynq: enqueueing the backlog", n)
	queue := "throughput" + h.roundSuffix()
	if _, err := h.enqueue(ctx, peer, addr, queue, n, 0); err != nil {
		row.Error = err.Error()
		h.bar.finish("failed")
		return
	}
	h.bar.finish(fmt.Sprintf("%d tasks of %d bytes", n, h.o.Size))

	h.bar.phase(row.Mode+" throughput", n)
	cpu0, _ := brokerCPU(h.redis)
	p, err := h.serve(peer, addr, queue, n)
	if err != nil {
		row.Error = err.Error()
		h.bar.finish("failed")
		return
	}
	if !h.measureThroughput(ctx, row, &measured{main: p}, h.redis, cpu0) {
		return
	}

	rate := h.latencyRate(row.Rate)
	nl := max(int64(math.Round(rate*h.o.LatencyDuration.Seconds())), 10)
	h.bar.phase(fmt.Sprintf("%s latency @ %s", row.Mode, formatRate(rate)), nl)
	lqueue := "latency" + h.roundSuffix()
	lp, err := h.serve(peer, addr, lqueue, nl)
	if err != nil {
		row.Error = "latency phase: " + err.Error()
		h.bar.finish("failed")
		return
	}
	res, achieved, err := h.offer(ctx, lp, func(ctx context.Context) (float64, error) {
		return h.enqueue(ctx, peer, addr, lqueue, nl, rate)
	}, nil)
	lp.stop(15 * time.Second)
	if err != nil {
		row.Error = "latency phase: " + err.Error()
		return
	}
	row.Latency = h.latencyFigures(res, rate, achieved)
}
