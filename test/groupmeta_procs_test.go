package test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
)

// What users asked upstream for (issue #15) on three real processes:
// delete by selector, a group's own expiry, who pushed; and the feature gate
// that keeps them out of the log while an older build is a member.

// httpDoHeader is httpDo with request headers (name, value, ...).
func httpDoHeader(method, u, body string, header ...string) (int, string, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// groupsView is the part of /api/v1/metrics these tests look at.
type groupsView []struct {
	Labels      map[string]string `json:"labels"`
	ExpireAfter string            `json:"expire_after"`
	ExpiresAt   string            `json:"expires_at"`
	LastPushBy  map[string]string `json:"last_push_by"`
}

func (m *member) groups(query string) groupsView {
	m.t.Helper()
	var env struct {
		Data groupsView `json:"data"`
	}
	if body := m.get("/api/v1/metrics" + query); json.Unmarshal([]byte(body), &env) != nil {
		m.t.Fatalf("/api/v1/metrics%s on %s: %s", query, m.name, body)
	}
	return env.Data
}

func (v groupsView) jobs() string {
	var s []string
	for _, g := range v {
		s = append(s, g.Labels["job"]+"/"+g.Labels["branch"])
	}
	return strings.Join(s, ",")
}

func matchQuery(sels ...string) string {
	v := url.Values{}
	for _, s := range sels {
		v.Add("match[]", s)
	}
	return "?" + v.Encode()
}

func TestDeleteBySelectorAndOwnExpiryOnThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	nodes, _ := startThree(t)
	// Every node accepts every kind of write.
	for _, m := range nodes {
		m.push("/metrics/job/ci-build/branch/feature-"+m.name, "a 1\n")
	}
	nodes[0].push("/metrics/job/ci-build/branch/main", "a 1\n")
	push := func(m *member, path, expire string) (int, string) {
		code, body, err := httpDoHeader("PUT", m.url()+path, "a 1\n", "X-Pushgateway-Expire-After", expire)
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	if code, body := push(nodes[2], "/metrics/job/bad", "soon"); code != 400 || !strings.Contains(body, "X-Pushgateway-Expire-After") {
		t.Fatalf("invalid expiry: %d %s", code, body)
	}
	for i, p := range []struct{ path, expire string }{{"/metrics/job/short", "2s"}, {"/metrics/job/hour", "1h"}, {"/metrics/job/never", "0"}} {
		if code, body := push(nodes[i], p.path, p.expire); code != 200 {
			t.Fatalf("push %s via %s: %d %s", p.path, nodes[i].name, code, body)
		}
	}
	state := assertSameState(t, nodes...)
	if strings.Contains(state, `"bad"`) {
		t.Fatal("a push with an invalid expiry was stored")
	}
	for _, g := range nodes[1].groups("") {
		switch job := g.Labels["job"]; {
		case job == "hour" && (g.ExpireAfter != "1h" || g.ExpiresAt == ""):
			t.Errorf("hour shows %q %q", g.ExpireAfter, g.ExpiresAt)
		case job == "never" && (g.ExpireAfter != "" || g.ExpiresAt != ""):
			t.Errorf("never shows %q %q", g.ExpireAfter, g.ExpiresAt)
		case !strings.HasPrefix(g.LastPushBy["remote_addr"], "127.0.0.1:"):
			t.Errorf("%s pushed by %v", job, g.LastPushBy)
		}
	}
	// The group with its own 2 s expiry goes on every node; the others
	// (no --push.expire-after) stay.
	eventually(t, "the 2 s group expired on every node", 20*time.Second, func() bool {
		for _, m := range nodes {
			if strings.Contains(m.get("/api/v1/metrics"), `"short"`) {
				return false
			}
		}
		return true
	})
	if got := nodes[2].groups(matchQuery(`{job=~"hour|never"}`)).jobs(); got != "hour/,never/" {
		t.Fatalf("after expiry: %s", got)
	}

	// Filtered listing and delete by selector, each through another node.
	sel := matchQuery(`{job="ci-build", branch=~"feature-.*"}`)
	for _, m := range nodes {
		if got := m.groups(sel).jobs(); strings.Count(got, "feature-") != 3 || strings.Contains(got, "main") {
			t.Fatalf("filtered listing on %s: %s", m.name, got)
		}
	}
	code, body, err := httpDo("PUT", nodes[1].url()+"/api/v1/admin/delete"+matchQuery(`{job=~".*"}`), "")
	if err != nil || code != 400 || !strings.Contains(body, "empty string") {
		t.Fatalf("delete matching everything: %d %v %s", code, err, body)
	}
	code, body, err = httpDo("PUT", nodes[2].url()+"/api/v1/admin/delete"+sel+"&dry_run=true", "")
	if err != nil || code != 200 || strings.Count(body, "feature-") != 3 {
		t.Fatalf("dry run: %d %v %s", code, err, body)
	}
	code, body, err = httpDo("POST", nodes[1].url()+"/api/v1/admin/delete"+sel, "")
	if err != nil || code != 200 || strings.Count(body, "feature-") != 3 {
		t.Fatalf("delete: %d %v %s", code, err, body)
	}
	for _, m := range nodes {
		if got := m.groups("").jobs(); got != "ci-build/main,hour/,never/" {
			t.Fatalf("%s after the delete: %s", m.name, got)
		}
	}
	state = assertSameState(t, nodes...)

	// Expiry and authorship survive a restart (replay of the log).
	nodes[2].kill()
	nodes[2].start(3, nodes...)
	waitReady(t, nodes...)
	if got := assertSameState(t, nodes...); got != state {
		t.Fatalf("after a restart:\n%s\nwant\n%s", got, state)
	}
}

// TestOlderMemberKeepsNewFieldsOutOfTheLog runs a build from before the
// feature gate beside two of this build: a push with an own expiry and a
// delete by selector are refused with 503 naming the older member (an
// entry it cannot decode would stop it), a plain push goes through without
// who pushed, and once the older member runs this build too, everything
// works.
func TestOlderMemberKeepsNewFieldsOutOfTheLog(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test with an older build")
	}
	const beforeGate = "5dbebb6" // the last commit before the feature gate
	old, err := procs.BuildRevision(t.TempDir(), beforeGate, "./cmd/pushgateway-cluster")
	if err != nil {
		t.Fatalf("build the older revision (the test needs this repository's git history): %v", err)
	}
	nodes := []*member{newMember(t, "node1"), newMember(t, "node2"), newMember(t, "node3")}
	nodes[0].bin = old
	for _, m := range nodes {
		m.start(3, nodes...)
	}
	waitReady(t, nodes...)

	withExpiry := func(m *member) (int, string) {
		code, body, err := httpDoHeader("PUT", m.url()+"/metrics/job/own", "a 1\n", "X-Pushgateway-Expire-After", "1h")
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	// The gate waits for gossip to tell every member's features; at first
	// it may be shut for a second, which is what it must be anyway.
	for _, m := range nodes[1:] {
		code, body := withExpiry(m)
		if code != 503 || !strings.Contains(body, "node1") || !strings.Contains(body, "upgrade") {
			t.Fatalf("push with expiry via %s beside an older member: %d %s", m.name, code, body)
		}
		code, body, err := httpDo("PUT", m.url()+"/api/v1/admin/delete"+matchQuery(`{job="plain"}`), "")
		if err != nil || code != 503 || !strings.Contains(body, "node1") {
			t.Fatalf("delete by selector via %s beside an older member: %d %v %s", m.name, code, err, body)
		}
		m.push("/metrics/job/plain/instance/"+m.name, "a 1\n")
	}
	assertSameState(t, nodes...)
	if !nodes[0].running() {
		t.Fatalf("the older member stopped:\n%s", nodes[0].out)
	}
	for _, g := range nodes[1].groups("") {
		if len(g.LastPushBy) != 0 {
			t.Fatalf("who pushed was written beside an older member: %v", g.LastPushBy)
		}
	}

	// The rolling upgrade ends: node1 runs this build.
	nodes[0].stop()
	nodes[0].bin = ""
	nodes[0].start(3, nodes...)
	waitReady(t, nodes...)
	// Each member learns node1's new features by gossip on its own time:
	// the gate must be open as every member sees it.
	eventually(t, "the gate opens on every member once every member runs this build", 20*time.Second, func() bool {
		for _, m := range nodes {
			if code, _ := withExpiry(m); code != 200 {
				return false
			}
		}
		return true
	})
	code, body, err := httpDo("PUT", nodes[2].url()+"/api/v1/admin/delete"+matchQuery(`{job="plain"}`), "")
	if err != nil || code != 200 || strings.Count(body, `"plain"`) != 2 {
		t.Fatalf("delete by selector after the upgrade: %d %v %s", code, err, body)
	}
	for _, m := range nodes {
		if got := m.groups("").jobs(); got != "own/" {
			t.Fatalf("%s after the upgrade: %s", m.name, got)
		}
	}
	assertSameState(t, nodes...)
}
