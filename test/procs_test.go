package test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
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
	if ourBinary, err = procs.Build(dir, "./cmd/pushgateway-cluster"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// proc is one running gateway process reachable at url.
type proc struct {
	*procs.Process
	name   string
	url    string // http://127.0.0.1:PORT, no trailing slash
	stderr *testutil.LockedBuffer
}

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
		out := &testutil.LockedBuffer{}
		started, err := procs.Start(name, append([]string{bin}, args...), procs.Options{Out: out})
		if err != nil {
			t.Fatal(err)
		}
		p := &proc{Process: started, name: name, url: "http://" + addr, stderr: out}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = p.WaitReady(ctx, p.url+"/-/ready")
		cancel()
		if err == nil {
			t.Cleanup(func() {
				_ = p.Kill()
				if t.Failed() {
					t.Logf("%s (%s %s) output:\n%s", name, bin, strings.Join(args, " "), out)
				}
			})
			return p
		}
		_ = p.Kill()
		lastErr = fmt.Errorf("%s (%s %s): %v; output:\n%s", name, bin, strings.Join(args, " "), err, out)
		if !strings.Contains(out.String(), "address already in use") {
			break
		}
	}
	t.Fatal(lastErr)
	return nil
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
