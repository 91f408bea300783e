package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// authzCluster is three processes behind basic auth (users ci and ops)
// with --web.authorization-file.
type authzCluster struct {
	t         *testing.T
	nodes     []*member
	rulesPath string
	passwords map[string]string
}

// as sends a request as user (basic auth) and returns code and body.
func (c *authzCluster) as(user, method string, m *member, path, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, m.url()+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth(user, c.passwords[user])
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}

// expect fails unless the request answers code with a body containing want.
func (c *authzCluster) expect(user, method string, m *member, path, body string, code int, want string) {
	c.t.Helper()
	got, resp := c.as(user, method, m, path, body)
	if got != code || !strings.Contains(resp, want) {
		c.t.Fatalf("%s %s on %s as %s: %d %q, want %d containing %q", method, path, m.name, user, got, resp, code, want)
	}
}

// groups returns the grouping keys /api/v1/metrics of m shows, as ops.
func (c *authzCluster) groups(m *member) []string {
	c.t.Helper()
	code, body := c.as("ops", "GET", m, "/api/v1/metrics", "")
	if code != 200 {
		c.t.Fatalf("/api/v1/metrics on %s: %d %s", m.name, code, body)
	}
	var env struct {
		Data []struct {
			Labels map[string]string `json:"labels"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, g := range env.Data {
		out = append(out, g.Labels["job"]+"/"+g.Labels["instance"])
	}
	return out
}

func (c *authzCluster) writeRules(content string) {
	c.t.Helper()
	if err := os.WriteFile(c.rulesPath, []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// hangUp sends SIGHUP to every node.
func (c *authzCluster) hangUp() {
	c.t.Helper()
	for _, m := range c.nodes {
		if err := m.proc.Signal(syscall.SIGHUP); err != nil {
			c.t.Fatal(err)
		}
	}
}

func startAuthzCluster(t *testing.T, rules string) *authzCluster {
	t.Helper()
	dir := t.TempDir()
	c := &authzCluster{t: t, rulesPath: filepath.Join(dir, "authz.yml"), passwords: map[string]string{"ci": "ci-secret", "ops": "ops-secret"}}
	web := "basic_auth_users:\n"
	for user, pw := range c.passwords {
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		web += fmt.Sprintf("  %s: %s\n", user, hash)
	}
	webPath := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webPath, []byte(web), 0o600); err != nil {
		t.Fatal(err)
	}
	c.writeRules(rules)
	c.nodes = []*member{newMember(t, "node1"), newMember(t, "node2"), newMember(t, "node3")}
	for _, m := range c.nodes {
		m.extra = []string{"--web.config.file=" + webPath, "--web.authorization-file=" + c.rulesPath}
		m.start(3, c.nodes...)
	}
	eventually(t, "three members ready with one leader, read as ci", 30*time.Second, func() bool {
		leader := ""
		for _, m := range c.nodes {
			if code, _ := c.as("ci", "GET", m, "/-/ready", ""); code != 200 {
				return false
			}
			code, body := c.as("ci", "GET", m, "/api/v1/cluster", "")
			var env struct {
				Data clusterView `json:"data"`
			}
			if code != 200 || json.Unmarshal([]byte(body), &env) != nil || env.Data.Leader == "" || (leader != "" && env.Data.Leader != leader) {
				return false
			}
			leader = env.Data.Leader
		}
		return true
	})
	return c
}

// TestPerJobAuthorizationOnAClusterOfProcesses: with basic auth and
// --web.authorization-file, every node refuses writes outside a user's
// jobs and admin requests of non-admins with 403 before anything is
// proposed, reads stay open, and SIGHUP reloads the rules on every node (a
// broken file keeps the old ones).
func TestPerJobAuthorizationOnAClusterOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	c := startAuthzCluster(t, "users:\n  ci:\n    push: [\"ci-*\"]\n  ops:\n    push: [\"*\"]\n    admin: true\n")
	nodes := c.nodes

	for _, m := range nodes {
		c.expect("ci", "PUT", m, "/metrics/job/ci-build/instance/"+m.name, "build_ok 1\n", 200, "")
		c.expect("ci", "PUT", m, "/metrics/job/nightly", "nightly_ok 1\n", 403, `user "ci" may not push to job "nightly" (--web.authorization-file)`)
		c.expect("ci", "POST", m, "/metrics/job/nightly/instance/"+m.name, "nightly_ok 1\n", 403, `user "ci" may not push to job "nightly"`)
		c.expect("ci", "GET", m, "/metrics", "", 200, "build_ok")
		c.expect("ci", "GET", m, "/api/v1/metrics", "", 200, "ci-build")
	}
	// Reads are current on every node: the three acknowledged pushes show,
	// the refused ones never do.
	for _, m := range nodes {
		if got := strings.Join(c.groups(m), " "); got != "ci-build/node1 ci-build/node2 ci-build/node3" {
			t.Fatalf("groups on %s: %s", m.name, got)
		}
	}

	c.expect("ops", "PUT", nodes[0], "/metrics/job/nightly", "nightly_ok 1\n", 200, "")
	for _, m := range nodes {
		c.expect("ci", "DELETE", m, "/metrics/job/nightly", "", 403, `user "ci" may not delete from job "nightly" (--web.authorization-file)`)
		c.expect("ci", "PUT", m, "/api/v1/admin/wipe", "", 403, `user \"ci\" may not use the admin API (needs admin: true in --web.authorization-file)`)
		c.expect("ci", "GET", m, "/api/v1/admin/snapshot", "", 403, `user \"ci\" may not use the admin API`)
		c.expect("ci", "PUT", m, "/api/v1/admin/delete"+matchQuery(`{job="nightly"}`), "", 403, `user \"ci\" may not use the admin API`)
	}
	for _, m := range nodes {
		if got := strings.Join(c.groups(m), " "); got != "ci-build/node1 ci-build/node2 ci-build/node3 nightly/" {
			t.Fatalf("groups on %s after refused deletes and wipes: %s", m.name, got)
		}
		c.expect("ops", "GET", m, "/-/metrics", "", 200, `pushgateway_authorization_denied_total{reason="admin"} 3`)
		// Who pushed: the authenticated user, on every node.
		c.expect("ci", "GET", m, "/api/v1/metrics"+matchQuery(`{job="ci-build"}`), "", 200, `"last_push_by":{"remote_addr":"127.0.0.1:`)
		c.expect("ci", "GET", m, "/api/v1/metrics"+matchQuery(`{job="ci-build"}`), "", 200, `"user":"ci"}`)
		c.expect("ops", "GET", m, "/api/v1/metrics"+matchQuery(`{job="nightly"}`), "", 200, `"user":"ops"`)
		c.expect("ops", "GET", m, "/-/metrics", "", 200, `pushgateway_authorization_denied_total{reason="push"} 3`)
	}
	c.expect("ops", "POST", nodes[2], "/api/v1/admin/delete"+matchQuery(`{job="nightly"}`), "", 200, `"groups":[{"job":"nightly"}]`)
	c.expect("ops", "PUT", nodes[1], "/api/v1/admin/wipe", "", 202, "")
	for _, m := range nodes {
		if got := c.groups(m); len(got) != 0 {
			t.Fatalf("groups on %s after the admin's wipe: %v", m.name, got)
		}
	}

	// SIGHUP with new rules: ci may push anything, ops is gone (it may
	// still read, being in basic_auth_users, but not write).
	c.writeRules("users:\n  ci:\n    push: [\"*\"]\n")
	c.hangUp()
	for _, m := range nodes {
		eventually(t, "ci may push to nightly through "+m.name+" after SIGHUP", 10*time.Second, func() bool {
			code, _ := c.as("ci", "PUT", m, "/metrics/job/nightly/instance/"+m.name, "nightly_ok 1\n")
			return code == 200
		})
		c.expect("ops", "PUT", m, "/metrics/job/ops", "x 1\n", 403, `user "ops" may not push to job "ops" (not listed in --web.authorization-file)`)
		c.expect("ops", "GET", m, "/api/v1/metrics", "", 200, "nightly")
		if out := m.out.String(); !strings.Contains(out, `msg="authorization rules reloaded"`) || !strings.Contains(out, "users=1") {
			t.Fatalf("%s did not log the reload:\n%s", m.name, out)
		}
	}

	// A broken file and SIGHUP: every node says why and keeps the rules.
	c.writeRules("users:\n  ci:\n    push: [\"ci-[\"]\n")
	c.hangUp()
	for _, m := range nodes {
		eventually(t, m.name+" logging that the broken file was not loaded", 10*time.Second, func() bool {
			out := m.out.String()
			return strings.Contains(out, "authorization rules not reloaded") && strings.Contains(out, "syntax error in pattern")
		})
		if !m.running() {
			t.Fatalf("%s exited after SIGHUP with a broken file", m.name)
		}
		c.expect("ci", "PUT", m, "/metrics/job/anything/instance/"+m.name, "x 1\n", 200, "")
		c.expect("ops", "PUT", m, "/api/v1/admin/wipe", "", 403, `user \"ops\" may not use the admin API`)
	}
	if got := len(c.groups(nodes[2])); got != 6 {
		t.Fatalf("%d groups after the pushes under the kept rules, want 6", got)
	}
}
