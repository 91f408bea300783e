package procs

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveEnv makes the test binary, started again by the tests, serve
// /-/ready (answering with its process ID) on the address it names until
// SIGTERM; parentEnv makes it start such a server itself (with Start) on
// the address it names, and wait.
const (
	serveEnv  = "PROCS_TEST_SERVE"
	parentEnv = "PROCS_TEST_PARENT"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(parentEnv); addr != "" {
		exe, err := os.Executable()
		if err != nil {
			os.Exit(3)
		}
		os.Unsetenv(parentEnv)
		os.Setenv(serveEnv, addr)
		if _, err := Start("server", []string{exe}, Options{}); err != nil {
			os.Exit(3)
		}
		select {}
	}
	if addr := os.Getenv(serveEnv); addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			os.Exit(3)
		}
		http.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, os.Getpid()) })
		go func() { _ = http.Serve(l, nil) }()
		select {}
	}
	os.Exit(m.Run())
}

func startServer(t *testing.T) (*Process, string) {
	t.Helper()
	return startTestBinary(t, serveEnv)
}

// startTestBinary starts the test binary again with env set to a free
// loopback address, and returns it and the address's /-/ready URL.
func startTestBinary(t *testing.T, env string) (*Process, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(env, addr)
	p, err := Start("server", []string{exe}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	return p, "http://" + addr + "/-/ready"
}

func TestStartWaitPauseResumeKill(t *testing.T) {
	p, url := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil || !p.Paused() {
		t.Fatalf("pause: %v, paused %v", err, p.Paused())
	}
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if err := p.WaitReady(short, url); err == nil {
		t.Fatal("a paused process answered")
	}
	if err := p.Signal(syscall.SIGCONT); err != nil || p.Paused() {
		t.Fatalf("resume: %v, paused %v", err, p.Paused())
	}
	if err := p.WaitReady(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil || p.Running() {
		t.Fatalf("kill: %v, running %v", err, p.Running())
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t.Fatal("signal to a gone process succeeded")
	}
}

func TestStopEndsAPausedProcess(t *testing.T) {
	p, _ := startServer(t)
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("still running after Stop")
	}
}

func TestWaitReadyFailsWhenTheProcessExits(t *testing.T) {
	p, err := Start("false", []string{"false"}, Options{})
	if err != nil {
		t.Skip("no false(1):", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = p.WaitReady(ctx, "http://127.0.0.1:1/-/ready")
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("got %v, want an error saying the process exited", err)
	}
}

func TestBuildMakesARunnableBinary(t *testing.T) {
	bin, err := Build(t.TempDir(), "./cmd/pushgateway-cluster")
	if err != nil {
		t.Fatal(err)
	}
	out := &strings.Builder{}
	p, err := Start("version", []string{bin, "--version"}, Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(30 * time.Second); err != nil || p.ExitError() != nil {
		t.Fatalf("wait: %v, exit: %v", err, p.ExitError())
	}
	if !strings.Contains(out.String(), "pushgateway-cluster") {
		t.Fatalf("--version printed %q", out.String())
	}
}
