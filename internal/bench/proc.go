package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kasync/kasync/internal/bench/benchproto"
)

// proc is a child process the harness started: a measured child (speaking benchproto
// on stdout) or a helper (broker, Redis, a kasync node) whose stdout is only logged.
type proc struct {
	name string
	cmd  *exec.Cmd
	// stderr keeps the last lines the child wrote there, for the error message when it
	// fails.
	stderr *tailBuffer

	events chan benchproto.Event // measured children only; closed at EOF
	// ignored is closed once no one reads events any more (awaitResult returned, or
	// the child is being stopped): the reader then discards the rest, so a chatty child
	// can never keep it, and so Wait and the harness, from finishing.
	ignored    chan struct{}
	ignoreOnce sync.Once
	readErr    error // why events closed early, if it did

	exited chan struct{} // closed when Wait returned
	err    error         // Wait's error
	usage  *syscall.Rusage
}

// startProc starts exe args. When measured, its stdout is read as benchproto events.
func startProc(name, exe string, args []string, measured bool, env []string) (*proc, error) {
	p := &proc{name: name, stderr: newTailBuffer(40), exited: make(chan struct{}), ignored: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Stderr = p.stderr
	p.cmd.Env = append(os.Environ(), env...)
	// A group of its own: Ctrl-C at the terminal reaches the harness, which stops its
	// children in order, not all at once.
	// Pdeathsig: a harness killed outright does not leave its children running.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout io.ReadCloser
	if measured {
		var err error
		if stdout, err = p.cmd.StdoutPipe(); err != nil {
			return nil, fmt.Errorf("bench: %s: stdout: %w", name, err)
		}
		p.events = make(chan benchproto.Event, 16)
	} else {
		p.cmd.Stdout = p.stderr
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s (%s): %w", name, exe, err)
	}
	var reading sync.WaitGroup
	if measured {
		reading.Add(1)
		go func() {
			defer reading.Done()
			defer close(p.events)
			r := benchproto.NewReader(stdout)
			for {
				e, err := r.Next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						p.readErr = err
						_, _ = io.Copy(io.Discard, stdout) // let the child finish writing
					}
					return
				}
				select {
				case p.events <- e:
				case <-p.ignored:
				}
			}
		}()
	}
	go func() {
		reading.Wait() // Wait closes the pipe: read it all first
		p.err = p.cmd.Wait()
		if p.cmd.ProcessState != nil {
			p.usage, _ = p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
		}
		close(p.exited)
	}()
	return p, nil
}

// pid is the child's process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks the child to stop (SIGTERM) and kills it if it has not exited within
// grace. It returns once the child has exited.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	p.ignore()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.kill()
	}
}

// kill kills the child's whole process group and waits for it.
func (p *proc) ignore() { p.ignoreOnce.Do(func() { close(p.ignored) }) }

func (p *proc) kill() {
	p.ignore()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// failure describes how the child failed, with the end of its stderr.
func (p *proc) failure(what error) error {
	tail := strings.TrimSpace(p.stderr.String())
	if tail == "" {
		return fmt.Errorf("%s: %w", p.name, what)
	}
	return fmt.Errorf("%s: %w; its last output:\n%s", p.name, what, indent(tail))
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// cpu is the user+system CPU time of an exited child.
func (p *proc) cpu() time.Duration {
	if p.usage == nil {
		return 0
	}
	return time.Duration(p.usage.Utime.Nano() + p.usage.Stime.Nano())
}

// peakRSS is an exited child's largest resident set in bytes (Linux: ru_maxrss in KiB).
func (p *proc) peakRSS() int64 {
	if p.usage == nil {
		return 0
	}
	return p.usage.Maxrss * 1024
}

// awaitResult reads a measured child's events until its result, calling progress for
// each progress event. It fails when the child exits without a result, reports no
// progress for stall, or ctx ends; the child is killed then.
func (p *proc) awaitResult(ctx context.Context, stall time.Duration, ready func(), progress func(done int64)) (*benchproto.Result, error) {
	defer p.ignore()
	timer := time.NewTimer(stall)
	defer timer.Stop()
	var last int64 = -1
	for {
		select {
		case <-ctx.Done():
			p.kill()
			return nil, p.failure(ctx.Err())
		case <-timer.C:
			p.kill()
			return nil, p.failure(fmt.Errorf("no progress for %s (after %d tasks); killed it", stall, max(last, 0)))
		case e, ok := <-p.events:
			if !ok {
				<-p.exited
				switch {
				case p.readErr != nil:
					return nil, p.failure(p.readErr)
				case p.err != nil:
					return nil, p.failure(fmt.Errorf("exited without a result: %w", p.err))
				default:
					return nil, p.failure(errors.New("exited without a result"))
				}
			}
			switch e.Event {
			case benchproto.EventReady:
				if ready != nil {
					ready()
				}
				timer.Reset(stall)
			case benchproto.EventProgress:
				if e.Done != last {
					last = e.Done
					timer.Reset(stall)
				}
				if progress != nil {
					progress(e.Done)
				}
			case benchproto.EventResult:
				// The child exits right after its result: wait, so that rusage is known.
				select {
				case <-p.exited:
				case <-time.After(stall):
					p.kill()
				}
				if p.err != nil {
					return nil, p.failure(fmt.Errorf("wrote a result but exited with %w", p.err))
				}
				return e.Result, nil
			}
		}
	}
}

// tailBuffer keeps the last lines written to it.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	lines []string
	part  []byte
}

func newTailBuffer(lines int) *tailBuffer { return &tailBuffer{max: lines} }

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, b...)
	for {
		i := strings.IndexByte(string(t.part), '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(t.part[:i]))
		t.part = t.part[i+1:]
		if len(t.lines) > t.max {
			t.lines = t.lines[len(t.lines)-t.max:]
		}
	}
	if len(t.part) > 4096 {
		t.part = t.part[len(t.part)-4096:]
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(append(append([]string(nil), t.lines...), string(t.part)), "\n")
}

// procCPU reads the user+system CPU time of a running process from /proc (Linux); 0
// and false where that is not possible.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces: fields after
	// the last ')' are 3.. of proc(5); utime and stime are 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const clkTck = 100 // USER_HZ, 100 on every Linux platform Go supports
	return time.Duration(ut+st) * time.Second / clkTck, true
}

// freeAddr returns a loopback address with a port free at the moment of the call.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: find a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// waitDial waits until addr accepts a TCP connection, the process exits, or timeout.
func waitDial(addr string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		select {
		case <-p.exited:
			if p.err == nil {
				return p.failure(fmt.Errorf("exited before listening on %s", addr))
			}
			return p.failure(fmt.Errorf("exited before listening on %s: %w", addr, p.err))
		default:
		}
		if time.Now().After(deadline) {
			return p.failure(fmt.Errorf("not listening on %s after %s", addr, timeout))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
