package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pgc-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if binary, err = procs.Build(dir, "./cmd/pushgateway-cluster"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one gateway process reachable at url.
type proc struct {
	*procs.Process
	url string
	out *testutil.LockedBuffer
}

// launch starts a one-node gateway on fresh loopback ports with the extra
// flags, without waiting for it; it is killed at the end of the test, and
// by the kernel if the test binary dies first (a timeout, a kill).
func launch(t *testing.T, storage string, extra ...string) *proc {
	t.Helper()
	web := testutil.FreeAddr(t)
	args := append([]string{binary, "--web.listen-address=" + web, "--storage.path=" + storage, "--raft.listen-address=" + testutil.FreeAddr(t), "--cluster.listen-address=" + testutil.FreeAddr(t), "--cluster.node-name=n1"}, extra...)
	out := &testutil.LockedBuffer{}
	started, err := procs.Start("gateway", args, procs.Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{Process: started, url: "http://" + web, out: out}
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("process output:\n%s", p.out)
		}
	})
	return p
}

// start launches a gateway and waits until it is ready.
func start(t *testing.T, storage string, extra ...string) *proc {
	t.Helper()
	p := launch(t, storage, extra...)
	prefix := ""
	for _, a := range extra {
		if u, ok := strings.CutPrefix(a, "--web.external-url="); ok {
			parsed, _ := url.Parse(u)
			prefix = strings.TrimSuffix(parsed.Path, "/")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx, p.url+prefix+"/-/ready"); err != nil {
		t.Fatalf("%v:\n%s", err, p.out)
	}
	return p
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.ExitError(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out)
	}
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestPushSurvivesRestart is the README's promise: run, push with curl,
// restart with the same --storage.path, and everything is still there,
// push_time_seconds included.
func TestPushSurvivesRestart(t *testing.T) {
	storage := t.TempDir()
	p := start(t, storage)
	for i, path := range []string{"/metrics/job/backup/instance/db1", "/metrics/job/ci"} {
		resp, err := http.Post(p.url+path, "text/plain", strings.NewReader(fmt.Sprintf("# TYPE backup_duration_seconds gauge\nbackup_duration_seconds %d\n", 10+i)))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("push: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	before := get(t, p.url+"/api/v1/metrics")
	beforeExpo := pushedLines(get(t, p.url+"/metrics"))
	p.stop(t)

	p2 := start(t, storage)
	if after := get(t, p2.url+"/api/v1/metrics"); after != before {
		t.Fatalf("state changed across restart:\n%s\nvs\n%s", after, before)
	}
	if after := pushedLines(get(t, p2.url+"/metrics")); after != beforeExpo || !strings.Contains(after, `backup_duration_seconds{instance="db1",job="backup"} 10`) {
		t.Fatalf("exposition after restart:\n%s\nbefore:\n%s", after, beforeExpo)
	}
}

func pushedLines(expo string) string {
	var out []string
	for _, l := range strings.Split(expo, "\n") {
		if strings.Contains(l, `job="`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestVersionAndBuildInfo(t *testing.T) {
	out, err := exec.Command(binary, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pushgateway-cluster, version") {
		t.Fatalf("--version: %v %s", err, out)
	}
	p := start(t, t.TempDir(), "--web.external-url=http://example.org/pg/")
	body := get(t, p.url+"/pg/metrics")
	if !strings.Contains(body, "pushgateway_build_info{") {
		t.Fatalf("no pushgateway_build_info:\n%s", body)
	}
	status := get(t, p.url+"/pg/api/v1/status")
	for _, flag := range []string{`"storage.path"`, `"web.listen-address"`, `"push.disable-consistency-check":"false"`} {
		if !strings.Contains(status, flag) {
			t.Fatalf("status lacks %s: %s", flag, status)
		}
	}
}

func TestLifecycleQuitStopsTheProcess(t *testing.T) {
	p := start(t, t.TempDir(), "--web.enable-lifecycle")
	req, _ := http.NewRequest("PUT", p.url+"/-/quit", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := p.Wait(20 * time.Second); err != nil {
		t.Fatalf("after /-/quit: %v", err)
	}
	if err := p.ExitError(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func TestComputeRoutePrefix(t *testing.T) {
	u, _ := url.Parse("http://example.org/ext/")
	for _, c := range []struct {
		prefix string
		ext    *url.URL
		want   string
	}{{"", u, "/ext"}, {"/", u, ""}, {"pre/", nil, "/pre"}, {"", &url.URL{}, ""}} {
		if got := computeRoutePrefix(c.prefix, c.ext); got != c.want {
			t.Errorf("computeRoutePrefix(%q, %v) = %q, want %q", c.prefix, c.ext, got, c.want)
		}
	}
}

// TestWebConfigBasicAuth checks --web.config.file (exporter-toolkit): API
// requests need the credentials, and writes still work with them.
func TestWebConfigBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  alice: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, t.TempDir(), "--web.config.file="+cfg)
	do := func(method, path, body string, auth bool) int {
		req, _ := http.NewRequest(method, p.url+path, strings.NewReader(body))
		if auth {
			req.SetBasicAuth("alice", "s3cret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(15 * time.Second)
	for do("GET", "/-/ready", "", true) != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("not ready:\n%s", p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := do("PUT", "/metrics/job/j", "a 1\n", false); code != 401 {
		t.Fatalf("push without credentials: %d", code)
	}
	if code := do("GET", "/metrics", "", false); code != 401 {
		t.Fatalf("scrape without credentials: %d", code)
	}
	if code := do("PUT", "/metrics/job/j", "a 1\n", true); code != 200 {
		t.Fatalf("push with credentials: %d", code)
	}
}

// TestClusterSelfMetricsAreReserved checks the cluster self-metrics are
// exposed without a job label and that a push may not reuse one of their
// names with another type.
func TestClusterSelfMetricsAreReserved(t *testing.T) {
	p := start(t, t.TempDir())
	body := get(t, p.url+"/metrics")
	for _, want := range []string{"pushgateway_cluster_raft_state{state=\"leader\"} 1", "pushgateway_cluster_is_leader 1", "pushgateway_cluster_raft_index{kind=\"applied\"}", "pushgateway_cluster_members{status=\"alive\"} 1", "pushgateway_cluster_forwarded_writes_total{result=\"ok\"} 0"} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	resp, err := http.Post(p.url+"/metrics/job/j", "text/plain", strings.NewReader("# TYPE pushgateway_cluster_raft_term counter\npushgateway_cluster_raft_term 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "gathered metric family pushgateway_cluster_raft_term has type COUNTER but should have GAUGE") {
		t.Fatalf("conflicting push: %d %s", resp.StatusCode, b)
	}
}

func TestHealthcheckSubcommand(t *testing.T) {
	p := start(t, t.TempDir())
	out, err := exec.Command(binary, "healthcheck", "--url="+p.url+"/-/ready").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "answered 200") {
		t.Fatalf("healthcheck of a ready node: %v %s", err, out)
	}
	out, err = exec.Command(binary, "healthcheck", "--url=http://"+testutil.FreeAddr(t)+"/-/ready", "--timeout=1s").CombinedOutput()
	if err == nil {
		t.Fatalf("healthcheck of nothing must fail: %s", out)
	}
}

// TestSecurityFlagErrors: a bad gossip key file or cluster TLS config stops
// the start with a clear message.
func TestSecurityFlagErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for flag, want := range map[string]string{
		"--cluster.gossip-key-file=" + write("short.key", "c2hvcnQ=\n"):                                                                                        "line 1: the key decodes to 5 bytes; it must be 16, 24 or 32 bytes",
		"--cluster.gossip-key-file=" + write("empty.key", "# nothing\n"):                                                                                       "no key found",
		"--cluster.gossip-key-file=" + filepath.Join(dir, "missing.key"):                                                                                       "read gossip key file",
		"--cluster.tls-config-file=" + write("tls.yml", "tls_server_config:\n  cert_file: a.crt\ntls_client_config:\n  cert_file: a.crt\n  key_file: a.key\n"): "client_ca_file is required",
		"--cluster.tls-config-file=" + write("typo.yml", "tls_server_config:\n  cert_fil: a.crt\n"):                                                            "field cert_fil not found",
	} {
		out, err := exec.Command(binary, "--web.listen-address="+testutil.FreeAddr(t), "--storage.path="+t.TempDir(), "--raft.listen-address="+testutil.FreeAddr(t),
			"--cluster.listen-address="+testutil.FreeAddr(t), "--cluster.node-name=n1", flag).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("%s: want failure with %q, got %v:\n%s", flag, want, err, out)
		}
	}
}

func TestMaxBodyBytesFlag(t *testing.T) {
	p := start(t, t.TempDir(), "--push.max-body-bytes=100")
	resp, err := http.Post(p.url+"/metrics/job/j", "text/plain", strings.NewReader(strings.Repeat("a 1\n", 50)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized push: %d", resp.StatusCode)
	}
}

// TestPushLimitAndTimeoutFlags starts the binary with tight per-push limits
// and read timeouts: pushes over a limit get 400, a client that stalls in
// its headers is disconnected, one that stalls in its body gets 408, and
// none of them changes the state or blocks other clients.
func TestPushLimitAndTimeoutFlags(t *testing.T) {
	p := start(t, t.TempDir(), "--push.max-series-per-push=3", "--push.max-labels-per-series=4", "--push.max-label-value-bytes=10",
		"--web.read-header-timeout=300ms", "--web.read-timeout=1s")
	push := func(path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("PUT", p.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, msg := push("/metrics/job/ok/a/b", "m{x=\"1\"} 1\nm{x=\"2\"} 1\nn 1\n"); code != 200 {
		t.Fatalf("push within the limits: %d %s", code, msg)
	}
	before := pushedLines(get(t, p.url+"/metrics"))
	for _, c := range []struct{ path, body, want string }{
		{"/metrics/job/series", "m{x=\"1\"} 1\nm{x=\"2\"} 1\nn 1\no 1\n", "--push.max-series-per-push=3"},
		{"/metrics/job/labels/a/b", "m{x=\"1\",y=\"2\",z=\"3\"} 1\n", "--push.max-labels-per-series=4"},
		{"/metrics/job/value", "m{x=\"01234567890\"} 1\n", "--push.max-label-value-bytes=10"},
		{"/metrics/job/value/g/01234567890", "m 1\n", "--push.max-label-value-bytes=10"},
		{"/metrics/job/ok/a/b", "m{x=\"1\"} 1\nm{x=\"2\"} 1\nm{x=\"3\"} 1\nn 1\n", "--push.max-series-per-push=3"},
	} {
		if code, msg := push(c.path, c.body); code != 400 || !strings.Contains(msg, c.want) {
			t.Errorf("PUT %s: got %d %q, want 400 naming %s", c.path, code, msg, c.want)
		}
	}

	// Headers that never end: the server hangs up after the header timeout.
	slowHeaders, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slowHeaders.Close()
	if _, err := io.WriteString(slowHeaders, "PUT /metrics/job/slow HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	// A body that stops halfway: 408 after the read timeout.
	slowBody, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slowBody.Close()
	if _, err := io.WriteString(slowBody, "PUT /metrics/job/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nslow 1\n"); err != nil {
		t.Fatal(err)
	}
	// Meanwhile other clients are served.
	if code, msg := push("/metrics/job/other", "other 1\n"); code != 200 {
		t.Fatalf("push next to stalled clients: %d %s", code, msg)
	}
	for name, c := range map[string]net.Conn{"stalled headers": slowHeaders, "stalled body": slowBody} {
		if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("%s: the server did not close the connection: %v", name, err)
		}
		if name == "stalled body" && !strings.HasPrefix(string(got), "HTTP/1.1 408") {
			t.Errorf("%s: want a 408 answer, got %q", name, got)
		}
		if name == "stalled headers" && len(got) > 0 && !strings.Contains(string(got), " 408 ") {
			t.Errorf("%s: unexpected answer %q", name, got)
		}
	}
	after := pushedLines(get(t, p.url+"/metrics"))
	var kept []string
	for _, l := range strings.Split(after, "\n") {
		if !strings.Contains(l, `job="other"`) {
			kept = append(kept, l)
		}
	}
	if got := strings.Join(kept, "\n"); got != before {
		t.Fatalf("rejected pushes changed the state:\n%s\nwant\n%s", got, before)
	}
}

// TestLoneNodeStartsWithAFewLinesThatSayWhatAUserNeeds: a lone node's
// log up to readiness names the listening address, the storage path, the
// cluster size and readiness in a few lines, with no warning (raft's and
// memberlist's chatter, and raft's first election, are debug).
func TestLoneNodeStartsWithAFewLinesThatSayWhatAUserNeeds(t *testing.T) {
	storage := t.TempDir()
	p := start(t, storage)
	var log string
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log, "node is ready") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		log = p.out.String()
	}
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) > 8 {
		t.Errorf("%d lines before ready, want at most 8:\n%s", len(lines), log)
	}
	for _, want := range []string{"Listening on", strings.TrimPrefix(p.url, "http://"), storage, "voters=1", "node is ready"} {
		if !strings.Contains(log, want) {
			t.Errorf("start-up log lacks %q:\n%s", want, log)
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "level=warn") || strings.Contains(l, "level=error") {
			t.Errorf("warning at a lone node's start: %s", l)
		}
	}
}
