package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// upstreamBinary is the Debian-packaged upstream Pushgateway (1.5.1).
const upstreamBinary = "/usr/bin/prometheus-pushgateway"

// ourBinary is the path of the pushgateway-cluster binary built by TestMain.
var ourBinary string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pgc-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ourBinary = filepath.Join(dir, "pushgateway-cluster")
	build := exec.Command("go", "build", "-o", ourBinary, "./cmd/pushgateway-cluster")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/pushgateway-cluster: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// proc is one running gateway process reachable at url.
type proc struct {
	name   string
	url    string // http://127.0.0.1:PORT, no trailing slash
	cmd    *exec.Cmd
	stderr *testutil.LockedBuffer
	exited chan struct{}
}

// freePort returns a loopback port that was free a moment ago.
// requireUpstream skips (or, under CI, fails) when the upstream binary is
// not installed.
func requireUpstream(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(upstreamBinary); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("upstream Pushgateway not installed (%v); apt-get install prometheus-pushgateway", err)
		}
		t.Fatalf("upstream Pushgateway not installed under CI: %v", err)
	}
}

// startUpstream starts the upstream Pushgateway with the extra flags.
func startUpstream(t *testing.T, extra ...string) *proc {
	t.Helper()
	requireUpstream(t)
	return startProc(t, "upstream", func() (string, []string) {
		port := testutil.FreePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		// Debian's build defaults --persistence.file to a shared file
		// under /var/lib/prometheus: keep each instance in memory only.
		args := append([]string{"--web.listen-address=" + addr, "--persistence.file="}, extra...)
		return addr, args
	}, upstreamBinary)
}

// startOurs starts a fresh one-node pushgateway-cluster with the extra flags.
func startOurs(t *testing.T, extra ...string) *proc {
	t.Helper()
	return startProc(t, "ours", func() (string, []string) {
		addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
		raftAddr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
		args := append([]string{
			"--web.listen-address=" + addr,
			"--storage.path=" + t.TempDir(),
			"--raft.listen-address=" + raftAddr,
			"--cluster.listen-address=127.0.0.1:" + strconv.Itoa(testutil.FreePort(t)),
			"--cluster.node-name=n1",
		}, extra...)
		return addr, args
	}, ourBinary)
}

// startProc launches bin and waits until GET /-/ready answers 200. Should
// the process die before that (a port taken between picking and binding),
// it is started again with new ports, a few times.
func startProc(t *testing.T, name string, argsFn func() (addr string, args []string), bin string) *proc {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, args := argsFn()
		p := &proc{
			name:   name,
			url:    "http://" + addr,
			cmd:    exec.Command(bin, args...),
			stderr: &testutil.LockedBuffer{},
			exited: make(chan struct{}),
		}
		p.cmd.Stdout = p.stderr
		p.cmd.Stderr = p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		go func() {
			_ = p.cmd.Wait()
			close(p.exited)
		}()
		err := p.waitReady(15 * time.Second)
		if err == nil {
			t.Cleanup(func() {
				p.stop()
				if t.Failed() {
					t.Logf("%s (%s %s) output:\n%s", name, bin, strings.Join(args, " "), p.stderr.String())
				}
			})
			return p
		}
		p.stop()
		lastErr = fmt.Errorf("%s (%s %s) not ready: %v; output:\n%s", name, bin, strings.Join(args, " "), err, p.stderr.String())
		if !strings.Contains(p.stderr.String(), "address already in use") {
			break
		}
	}
	t.Fatal(lastErr)
	return nil
}

func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// waitReady polls /-/ready until it answers 200, the process exits or the
// timeout passes.
func (p *proc) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: time.Second}
	last := "no answer yet"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/-/ready", nil)
		resp, err := client.Do(req)
		if err == nil {
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
			return fmt.Errorf("process exited (%v)", p.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("timeout after %v, last: %s", timeout, last)
		case <-tick.C:
		}
	}
}

// startPair starts upstream and ours with the same extra flags (ours also
// gets its cluster flags). Upstream is ready within ~100 ms, so starting
// them one after the other costs little; scenarios run in parallel anyway.
func startPair(t *testing.T, extra ...string) (up, our *proc) {
	t.Helper()
	up = startUpstream(t, extra...)
	our = startOurs(t, extra...)
	return up, our
}
