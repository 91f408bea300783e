package procs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestChildOutlivesTheThreadThatAskedForIt starts a server from a goroutine
// that locks its thread and returns, which ends the thread: the server
// still answers once the thread is gone, since the kernel ties a child to
// the thread that started it and Start starts every child on a thread that
// lives as long as the process. (Started on the caller's thread, the server
// was killed with it: so the tests whose goroutines lock their threads, the
// network-namespace dialers, could not have their nodes die with the test
// binary.)
func TestChildOutlivesTheThreadThatAskedForIt(t *testing.T) {
	type started struct {
		p   *Process
		url string
		tid int
	}
	done := make(chan started)
	var s started
	for s.p == nil {
		go func() {
			runtime.LockOSThread()
			if syscall.Gettid() == os.Getpid() {
				// The process's first thread: Go parks it rather than
				// ending it. Try another.
				runtime.UnlockOSThread()
				done <- started{}
				return
			}
			// Not unlocked: the thread ends with this goroutine.
			p, url := startServer(t)
			done <- started{p, url, syscall.Gettid()}
		}()
		s = <-done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	task := fmt.Sprintf("/proc/self/task/%d", s.tid)
	for {
		if _, err := os.Stat(task); errors.Is(err, fs.ErrNotExist) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("thread %d did not end", s.tid)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := s.p.WaitReady(ctx, s.url); err != nil {
		t.Fatalf("the server died with the thread that asked for it: %v", err)
	}
}

// TestChildDiesWithItsParent kills a process that started a server (with
// Start) and waits for the server to end too: a test binary killed by a
// timeout or by hand leaves no node running.
func TestChildDiesWithItsParent(t *testing.T) {
	parent, url := startTestBinary(t, parentEnv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := parent.WaitReady(ctx, url); err != nil {
		t.Fatalf("the parent's server did not answer: %v", err)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("server answered %q", b)
	}
	if err := parent.Kill(); err != nil {
		t.Fatal(err)
	}
	for alive(pid) {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("server %d outlived its killed parent", pid)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// alive reports whether pid is a process that has not exited (a zombie,
// ended but not yet reaped by its new parent, is not alive).
func alive(pid int) bool {
	state, err := processState(pid)
	return err == nil && state != 'Z'
}
