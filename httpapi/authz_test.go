package httpapi_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/authz"
)

const authzRules = `
users:
  ci:
    push: ["ci-*"]
  ops:
    push: ["*"]
    admin: true
`

// as returns the Authorization header of user (requestUser takes the name;
// exporter-toolkit, not running here, would have checked the password).
func as(user string) []string {
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":pw"))}
}

func withAuthz(h *authz.Holder) func(*httpapi.Options) {
	return func(o *httpapi.Options) {
		o.EnableAdminAPI = true
		o.BasicAuthUsers = func() bool { return true }
		o.Authorization = h
	}
}

func openRules(t *testing.T, content string) (*authz.Holder, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "authz.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := authz.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return h, path
}

func TestAuthorizationMatrix(t *testing.T) {
	h, _ := openRules(t, authzRules)
	g := startGateway(t, withAuthz(h))
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

	// Within scope: pushes and deletes as without the file.
	g.expect("PUT", "/metrics/job/ci-build", "a 1\n", 200, "", as("ci")...)
	g.expect("POST", "/metrics/job/ci-build/instance/x", "a 2\n", 200, "", as("ci")...)
	g.expect("PUT", "/metrics/job@base64/"+b64("ci-b64"), "a 3\n", 200, "", as("ci")...)
	g.expect("DELETE", "/metrics/job/ci-build/instance/x", "", 202, "", as("ci")...)
	g.expect("PUT", "/metrics/job/nightly", "a 4\n", 200, "", as("ops")...)

	// Outside scope: 403 naming user and job, before the body is parsed,
	// and nothing proposed (the applied index stays).
	before := g.state.AppliedIndex()
	for _, c := range []struct{ method, path, body, user, want string }{
		{"PUT", "/metrics/job/nightly", "a 1\n", "ci", `user "ci" may not push to job "nightly" (--web.authorization-file)`},
		{"POST", "/metrics/job/nightly/instance/i", "a 1\n", "ci", `user "ci" may not push to job "nightly" (--web.authorization-file)`},
		{"PUT", "/metrics/job/nightly", "a{ not parsed\n", "ci", `user "ci" may not push to job "nightly"`},
		{"DELETE", "/metrics/job/nightly", "", "ci", `user "ci" may not delete from job "nightly" (--web.authorization-file)`},
		{"PUT", "/metrics/job@base64/" + b64("nightly"), "a 1\n", "ci", `user "ci" may not push to job "nightly"`},
		{"PUT", "/metrics/job@base64/" + b64("ci-a/b"), "a 1\n", "ci", `user "ci" may not push to job "ci-a/b"`},
		{"PUT", "/metrics/job/xci-build", "a 1\n", "ci", `job "xci-build"`},
		{"PUT", "/metrics/job/ci-build", "a 1\n", "bob", `user "bob" may not push to job "ci-build" (not listed in --web.authorization-file)`},
		{"DELETE", "/metrics/job/ci-build", "", "bob", `user "bob" may not delete from job "ci-build" (not listed`},
	} {
		g.expect(c.method, c.path, c.body, 403, c.want, as(c.user)...)
	}
	for _, c := range []struct{ method, path, user, want string }{
		{"PUT", "/api/v1/admin/wipe", "ci", `user \"ci\" may not use the admin API (needs admin: true in --web.authorization-file)`},
		{"GET", "/api/v1/admin/snapshot", "ci", `user \"ci\" may not use the admin API`},
		{"PUT", "/api/v1/admin/restore", "ci", `user \"ci\" may not use the admin API`},
		{"POST", "/api/v1/admin/cluster/transfer-leadership", "ci", `user \"ci\" may not use the admin API`},
		{"DELETE", "/api/v1/admin/cluster/members/n1", "ci", `user \"ci\" may not use the admin API`},
		{"PUT", "/api/v1/admin/wipe", "bob", `user \"bob\" may not use the admin API (not listed in --web.authorization-file)`},
	} {
		code, body, hdr := g.do(c.method, c.path, strings.NewReader("x"), as(c.user)...)
		// Wipe has no CORS headers, as upstream; the other /api/v1 routes
		// have them on a refusal too.
		cors := c.path == "/api/v1/admin/wipe" || hdr.Get("Access-Control-Allow-Origin") == "*"
		if code != 403 || !strings.Contains(body, c.want) || !strings.Contains(body, `"errorType":"forbidden"`) || !cors {
			t.Fatalf("%s %s as %s: %d %s %v, want 403 with %s", c.method, c.path, c.user, code, body, hdr, c.want)
		}
	}
	if after := g.state.AppliedIndex(); after != before {
		t.Fatalf("refused requests changed the applied index: %d -> %d", before, after)
	}

	// Reads stay open to everyone authenticated, listed or not.
	for _, user := range []string{"ci", "bob"} {
		for _, p := range []string{"/metrics", "/api/v1/metrics", "/api/v1/status", "/", "/status", "/-/ready"} {
			g.expect("GET", p, "", 200, "", as(user)...)
		}
	}
	pushed := g.pushed("/metrics")
	if strings.Contains(pushed, `job="nightly",instance="i"`) || !strings.Contains(pushed, `a{instance="",job="nightly"} 4`) || strings.Contains(pushed, `job="ci-a/b"`) {
		t.Fatalf("a refused write changed the store:\n%s", pushed)
	}

	// Self-metric: 9 pushes and deletes, 6 admin requests refused.
	_, self, _ := g.do("GET", httpapi.SelfMetricsPath, nil)
	for _, want := range []string{`pushgateway_authorization_denied_total{reason="push"} 9`, `pushgateway_authorization_denied_total{reason="admin"} 6`} {
		if !strings.Contains(self, want) {
			t.Fatalf("self-metrics lack %q:\n%s", want, self)
		}
	}

	// An admin may.
	g.expect("GET", "/api/v1/admin/snapshot", "", 200, "", as("ops")...)
	g.expect("PUT", "/api/v1/admin/wipe", "", 202, "", as("ops")...)
	if got := g.pushed("/metrics"); got != "" {
		t.Fatalf("after the admin's wipe:\n%s", got)
	}
}

func TestAuthorizationFollowsReload(t *testing.T) {
	h, path := openRules(t, authzRules)
	g := startGateway(t, withAuthz(h))
	g.expect("PUT", "/metrics/job/nightly", "a 1\n", 403, `user "ci" may not push to job "nightly"`, as("ci")...)
	if err := os.WriteFile(path, []byte("users:\n  ci:\n    push: [\"*\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	g.expect("PUT", "/metrics/job/nightly", "a 1\n", 200, "", as("ci")...)
	// ops is gone from the new file: it may read, but no longer wipe.
	g.expect("PUT", "/api/v1/admin/wipe", "", 403, `user \"ops\" may not use the admin API (not listed`, as("ops")...)
	g.expect("GET", "/api/v1/metrics", "", 200, "nightly", as("ops")...)
}

func TestNoAuthorizationFileChangesNothing(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) { o.EnableAdminAPI = true; o.BasicAuthUsers = func() bool { return true } })
	g.expect("PUT", "/metrics/job/nightly", "a 1\n", 200, "", as("anyone")...)
	g.expect("DELETE", "/metrics/job/nightly", "", 202, "", as("anyone")...)
	g.expect("PUT", "/api/v1/admin/wipe", "", 202, "", as("anyone")...)
	_, self, _ := g.do("GET", httpapi.SelfMetricsPath, nil)
	if strings.Contains(self, "pushgateway_authorization_denied_total") {
		t.Fatal("the denial counter is exposed without --web.authorization-file")
	}
	// The name is reserved on every node all the same, so that every
	// node's state machine gives the same verdict.
	g.expect("PUT", "/metrics/job/j", "# TYPE pushgateway_authorization_denied_total gauge\npushgateway_authorization_denied_total 1\n", 400,
		"gathered metric family pushgateway_authorization_denied_total has type GAUGE but should have COUNTER")
}
