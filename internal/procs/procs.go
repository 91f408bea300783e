// Package procs runs the product's processes for the tests and the
// benchmark: build a binary once, start it with its output captured, send
// it signals (pause, resume), stop it gracefully or kill it, and wait until
// it answers. Every helper that starts a gateway process (test/, test/chaos,
// cmd/pgbench) holds a *Process; what differs between them is the command
// line and what they read from the running node. On Linux every process
// started here dies with the one that started it, even when that one is
// killed: a test binary stopped by a timeout or by hand leaves no node
// running (starter.go).
package procs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles the main package pkg, a path relative to the module root
// such as "./cmd/pushgateway-cluster", into dir and returns the binary's
// path. It builds as a release is built (CGO_ENABLED=0: a static binary
// with Go's own resolver), so the tests run what ships. The go command's
// build cache makes every build after the first in a session a link.
func Build(dir, pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// BuildRevision compiles pkg as Build does, but from the source of an
// earlier git revision of this repository (git archive into dir, so the
// working tree and the repository are left as they are): a test runs an
// older build beside this one, as a rolling upgrade does. It fails when
// the module is not inside a git repository that holds the revision.
func BuildRevision(dir, rev, pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, "src-"+rev)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", fmt.Errorf("build revision %s: %w", rev, err)
	}
	archive := exec.Command("bash", "-o", "pipefail", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "bash", root, rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive %s: %w\n%s", rev, err, out)
	}
	bin := filepath.Join(dir, filepath.Base(pkg)+"-"+rev)
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s at %s: %w\n%s", pkg, rev, err, out)
	}
	return bin, nil
}

// moduleRoot is the directory of the go.mod of the working directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// Options say how a process starts.
type Options struct {
	// Out receives standard output and standard error; nil discards them.
	Out io.Writer
	// Dir is the working directory; "" is the caller's.
	Dir string
}

// Process is one started program.
type Process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}

	mu      sync.Mutex
	paused  bool
	waitErr error
}

// Start starts argv[0] with the arguments argv[1:]. The process dies with
// the caller's: on Linux the kernel kills it when this process ends, even
// by SIGKILL (starter.go).
func Start(name string, argv []string, opt Options) (*Process, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("start %s: empty command line", name)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = opt.Out, opt.Out
	cmd.Dir = opt.Dir
	cmd.SysProcAttr = dieWithParent()
	if err := onStarterThread(cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// Name is the name the process was started with.
func (p *Process) Name() string { return p.name }

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process is gone.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// ExitError is how the process ended (nil for exit status 0); meaningful
// once Exited is closed.
func (p *Process) ExitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Paused reports whether the process was stopped with SIGSTOP and not
// resumed since.
func (p *Process) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Signal sends sig, remembering SIGSTOP and SIGCONT; an error when the
// process is gone. After SIGSTOP it returns once the kernel shows the
// process stopped (within stopWait): the signal is delivered
// asynchronously, and a caller that pauses a node to test what happens
// without it must not race the node's last answers.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.signal(sig); err != nil {
		return err
	}
	if sig == syscall.SIGSTOP {
		return p.waitStopped()
	}
	return nil
}

// signal sends sig and notes a pause or resume, under p.mu.
func (p *Process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.Running() {
		return fmt.Errorf("%s is not running", p.name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p.name, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return nil
}

// stopWait bounds how long Signal waits for a SIGSTOP to take effect.
const stopWait = 10 * time.Second

// waitStopped polls the process's state until it is stopped.
func (p *Process) waitStopped() error {
	deadline := time.Now().Add(stopWait)
	for {
		stopped, err := processStopped(p.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("pause %s: %w", p.name, err)
		}
		if stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pause %s: not stopped within %v of SIGSTOP", p.name, stopWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// Wait waits up to timeout for the process to exit.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %v", p.name, timeout)
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to go; nothing
// happens when it is gone already.
func (p *Process) Kill() error {
	if !p.Running() {
		return nil
	}
	_ = p.cmd.Process.Kill()
	return p.Wait(10 * time.Second)
}

// Stop resumes a paused process, sends SIGTERM and waits up to timeout for
// it to exit. A process still running then is left running: the caller
// decides (a goroutine dump with SIGQUIT, Kill).
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Running() {
		return nil
	}
	if p.Paused() {
		_ = p.Signal(syscall.SIGCONT)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		if !p.Running() {
			return nil
		}
		return err
	}
	return p.Wait(timeout)
}

// WaitReady polls url (a node's /-/ready) until it answers 200. It fails
// when ctx ends or the process exits first, saying what it saw last.
func (p *Process) WaitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited (%v) before %s answered 200", p.name, p.ExitError(), url)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %w; last: %s", p.name, url, ctx.Err(), last)
		case <-tick.C:
		}
	}
}
