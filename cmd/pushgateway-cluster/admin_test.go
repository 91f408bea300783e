package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

func runAdmin(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"admin"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func push(t *testing.T, base, path, body string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", base+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("push %s: %v %v", path, resp, err)
	}
	resp.Body.Close()
}

func TestAdminSubcommands(t *testing.T) {
	storage := t.TempDir()
	p := start(t, storage, "--web.enable-admin-api")
	push(t, p.url, "/metrics/job/a/instance/i", "# TYPE x counter\nx 1\n")
	push(t, p.url, "/metrics/job/b", "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n")
	want := get(t, p.url+"/api/v1/metrics")

	// snapshot: to a file (complete or not at all) and to stdout.
	file := filepath.Join(t.TempDir(), "backup.snap")
	if _, stderr, code := runAdmin(t, nil, "snapshot", "--url="+p.url, "--output="+file); code != 0 || !strings.Contains(stderr, "2 groups") {
		t.Fatalf("snapshot: %d %s", code, stderr)
	}
	stdout, _, code := runAdmin(t, nil, "snapshot", "--url="+p.url+"/")
	snap, _ := os.ReadFile(file)
	if code != 0 || len(stdout) == 0 || len(snap) == 0 {
		t.Fatalf("snapshot to stdout: %d, %d bytes; file %d bytes", code, len(stdout), len(snap))
	}

	// members
	out, _, code := runAdmin(t, nil, "members", "--url="+p.url)
	if code != 0 || !strings.Contains(out, "n1") || !strings.Contains(out, "voter") || !strings.Contains(out, "leader: n1") {
		t.Fatalf("members: %d\n%s", code, out)
	}
	out, _, code = runAdmin(t, nil, "members", "--url="+p.url, "--json")
	if code != 0 || !strings.Contains(out, `"self": "n1"`) {
		t.Fatalf("members --json: %d\n%s", code, out)
	}

	// Change the state, then restore from the file and from stdin.
	req, _ := http.NewRequest("PUT", p.url+"/api/v1/admin/wipe", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 202 {
		t.Fatalf("wipe: %v %v", resp, err)
	}
	push(t, p.url, "/metrics/job/c", "y 1\n")
	if out, stderr, code := runAdmin(t, nil, "restore", "--url="+p.url, "--input="+file); code != 0 || !strings.Contains(out, "restored 2 groups") {
		t.Fatalf("restore: %d %s %s", code, out, stderr)
	}
	if got := get(t, p.url+"/api/v1/metrics"); got != want {
		t.Fatalf("after restore:\n%s\nwant:\n%s", got, want)
	}
	push(t, p.url, "/metrics/job/c", "y 1\n")
	if _, stderr, code := runAdmin(t, []byte(stdout), "restore", "--url="+p.url); code != 0 {
		t.Fatalf("restore from stdin: %d %s", code, stderr)
	}
	if got := get(t, p.url+"/api/v1/metrics"); got != want {
		t.Fatal("restore from stdin did not restore")
	}

	// A damaged snapshot is refused locally; nothing changes.
	bad := append([]byte(nil), snap...)
	bad[len(bad)/2] ^= 0x04
	if _, stderr, code := runAdmin(t, bad, "restore", "--url="+p.url); code != 1 || !strings.Contains(stderr, "corrupt snapshot") {
		t.Fatalf("damaged restore: %d %s", code, stderr)
	}

	// Operator errors come back with the API's message.
	if _, stderr, code := runAdmin(t, nil, "transfer-leadership", "--url="+p.url); code != 1 || !strings.Contains(stderr, "no other voter") {
		t.Fatalf("transfer on a lone node: %d %s", code, stderr)
	}
	if _, stderr, code := runAdmin(t, nil, "remove-member", "--url="+p.url, "ghost"); code != 1 || !strings.Contains(stderr, `no server "ghost"`) {
		t.Fatalf("remove unknown member: %d %s", code, stderr)
	}
	for _, args := range [][]string{{}, {"nope"}, {"remove-member", "--url=" + p.url}, {"members", "extra"}, {"recover", "--voters=bad"}} {
		if _, _, code := runAdmin(t, nil, args...); code != 2 {
			t.Errorf("admin %v: exit %d, want 2", args, code)
		}
	}

	// recover refuses a running node, then works on the stopped one.
	if _, stderr, code := runAdmin(t, nil, "recover", "--storage.path="+storage); code != 1 || !strings.Contains(stderr, "stop the node first") {
		t.Fatalf("recover of a running node: %d %s", code, stderr)
	}
	p.stop(t)
	if out, stderr, code := runAdmin(t, nil, "recover", "--storage.path="+storage); code != 0 || !strings.Contains(out, "n1 at") {
		t.Fatalf("recover: %d %s %s", code, out, stderr)
	}
	p2 := start(t, storage, "--web.enable-admin-api")
	if got := get(t, p2.url+"/api/v1/metrics"); got != want {
		t.Fatalf("after recover:\n%s\nwant:\n%s", got, want)
	}

	// Without the admin API the snapshot is refused with a hint.
	p3 := start(t, t.TempDir())
	if _, stderr, code := runAdmin(t, nil, "snapshot", "--url="+p3.url); code != 1 || !strings.Contains(stderr, "--web.enable-admin-api") {
		t.Fatalf("snapshot without admin API: %d %s", code, stderr)
	}
}

func TestExpireAfterFlag(t *testing.T) {
	p := start(t, t.TempDir(), "--push.expire-after=1s")
	push(t, p.url, "/metrics/job/short-lived", "x 1\n")
	if !strings.Contains(get(t, p.url+"/metrics"), `job="short-lived"`) {
		t.Fatal("pushed group missing")
	}
	deadline := time.Now().Add(15 * time.Second)
	for strings.Contains(get(t, p.url+"/metrics"), `job="short-lived"`) {
		if time.Now().After(deadline) {
			t.Fatal("group not expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop(t) // p.out may be read once the process has exited
	if !strings.Contains(p.out.String(), "expired groups (their own expiry or --push.expire-after)") {
		t.Fatalf("no log line about the expiry:\n%s", p.out)
	}
	out, err := exec.Command(binary, "--storage.path="+t.TempDir(), "--push.expire-after=-1s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "must not be negative") {
		t.Fatalf("negative expiry: %v %s", err, out)
	}
}

func TestPersistenceFileErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(bad, []byte("this is not gob"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "--web.listen-address="+testutil.FreeAddr(t), "--storage.path="+t.TempDir(), "--raft.listen-address="+testutil.FreeAddr(t),
		"--cluster.listen-address="+testutil.FreeAddr(t), "--cluster.node-name=n1", "--persistence.file="+bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a Pushgateway persistence file") {
		t.Fatalf("garbage persistence file: %v %s", err, out)
	}
	// A missing file is nothing to import, as upstream starts empty.
	p := start(t, t.TempDir(), "--persistence.file="+filepath.Join(t.TempDir(), "missing"))
	p.stop(t)
	if !strings.Contains(p.out.String(), "nothing to import") {
		t.Fatalf("missing file not reported:\n%s", p.out)
	}
}

// TestAdminWithHTTPConfigFile: against an API behind basic auth, the admin
// sub-command authenticates with --http.config.file, as healthcheck does.
func TestAdminWithHTTPConfigFile(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	webCfg := filepath.Join(dir, "web.yml")
	clientCfg := filepath.Join(dir, "client.yml")
	if err := os.WriteFile(webCfg, []byte("basic_auth_users:\n  alice: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(clientCfg, []byte("basic_auth:\n  username: alice\n  password: s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, t.TempDir(), "--web.config.file="+webCfg, "--web.enable-admin-api")
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _, code := runAdmin(t, nil, "members", "--url="+p.url, "--http.config.file="+clientCfg)
		if code == 0 && strings.Contains(out, "leader: n1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin members with credentials: %d %s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, stderr, code := runAdmin(t, nil, "snapshot", "--url="+p.url); code != 1 || !strings.Contains(stderr, "401") {
		t.Fatalf("snapshot without credentials: %d %s", code, stderr)
	}
	if _, stderr, code := runAdmin(t, nil, "snapshot", "--url="+p.url, "--http.config.file="+clientCfg); code != 0 {
		t.Fatalf("snapshot with credentials: %d %s", code, stderr)
	}
}
