package httpapi_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

// apiGroup is a group of /api/v1/metrics with the fields beyond upstream.
type apiGroup struct {
	Labels      map[string]string `json:"labels"`
	ExpireAfter string            `json:"expire_after"`
	ExpiresAt   string            `json:"expires_at"`
	LastPushBy  map[string]string `json:"last_push_by"`
}

func (g *gateway) apiGroups(query string) []apiGroup {
	g.t.Helper()
	code, body, _ := g.do("GET", "/api/v1/metrics"+query, nil)
	var env struct {
		Status string     `json:"status"`
		Data   []apiGroup `json:"data"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &env) != nil || env.Status != "success" {
		g.t.Fatalf("GET /api/v1/metrics%s: %d %s", query, code, body)
	}
	return env.Data
}

func jobsOf(groups []apiGroup) string {
	var s []string
	for _, g := range groups {
		s = append(s, g.Labels["job"]+"/"+g.Labels["branch"])
	}
	return strings.Join(s, ",")
}

func TestExpireAfterHeaderAndWhoPushedShowInTheAPI(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	g := startGateway(t, func(o *httpapi.Options) {
		o.Now = func() time.Time { return now }
		o.ExpireAfter = time.Hour
	})
	before := g.pushed("/metrics")
	for _, bad := range []string{"soon", "-1s", "1.5h", "", "200y"} {
		g.expect("PUT", "/metrics/job/bad", "a 1\n", 400, httpapi.ExpireAfterHeader, httpapi.ExpireAfterHeader, bad)
	}
	if g.pushed("/metrics") != before || len(g.apiGroups("")) != 0 {
		t.Fatal("a push with an invalid expiry changed the state")
	}
	g.expect("PUT", "/metrics/job/own", "a 1\n", 200, "", httpapi.ExpireAfterHeader, "90s")
	g.expect("PUT", "/metrics/job/never", "a 1\n", 200, "", httpapi.ExpireAfterHeader, "0")
	g.expect("PUT", "/metrics/job/flag", "a 1\n", 200, "")
	got := map[string]apiGroup{}
	for _, gr := range g.apiGroups("") {
		got[gr.Labels["job"]] = gr
	}
	if o := got["own"]; o.ExpireAfter != "1m30s" || o.ExpiresAt != "2026-12-05T10:01:30Z" {
		t.Errorf("own expiry shown as %q %q", o.ExpireAfter, o.ExpiresAt)
	}
	if f := got["flag"]; f.ExpireAfter != "1h" || f.ExpiresAt != "2026-12-05T11:00:00Z" {
		t.Errorf("--push.expire-after shown as %q %q", f.ExpireAfter, f.ExpiresAt)
	}
	if n := got["never"]; n.ExpireAfter != "" || n.ExpiresAt != "" {
		t.Errorf("a group that never expires shows %q %q", n.ExpireAfter, n.ExpiresAt)
	}
	by := got["own"].LastPushBy
	if by["remote_addr"] == "" || !strings.HasPrefix(by["remote_addr"], "127.0.0.1:") || by["user"] != "" {
		t.Errorf("last_push_by %v", by)
	}
}

func TestListingAndDeletingBySelector(t *testing.T) {
	g := startGateway(t, adminOn)
	for _, p := range []string{"ci-build/branch/feature-a", "ci-build/branch/feature-b", "ci-build/branch/main", "nightly/branch/feature-a", "backup"} {
		g.expect("PUT", "/metrics/job/"+p, "a 1\n", 200, "")
	}
	q := func(sels ...string) string {
		v := url.Values{}
		for _, s := range sels {
			v.Add("match[]", s)
		}
		return "?" + v.Encode()
	}
	if got := jobsOf(g.apiGroups(q(`{job="ci-build", branch=~"feature-.*"}`, `{job="backup"}`))); got != "ci-build/feature-a,ci-build/feature-b,backup/" {
		t.Fatalf("filtered listing: %s", got)
	}
	if got := jobsOf(g.apiGroups("")); strings.Count(got, ",") != 4 {
		t.Fatalf("unfiltered listing after a filtered one: %s", got)
	}
	before := g.pushed("/metrics")
	for sel, want := range map[string]string{
		`{job=~".*"}`:      "at least one matcher must not match the empty string",
		`{job="a"`:         "parse error",
		`up{job="a"}`:      "metric name",
		`{branch=~"(" }`:   "missing closing )",
		`{job!="nightly"}`: "at least one matcher",
	} {
		for _, m := range []string{"GET", "PUT"} {
			path := "/api/v1/metrics"
			if m == "PUT" {
				path = "/api/v1/admin/delete"
			}
			code, body, _ := g.do(m, path+q(sel), nil)
			if code != 400 || !strings.Contains(body, want) || !strings.Contains(body, `"errorType":"bad_data"`) {
				t.Errorf("%s %s: %d %s, want 400 with %q", m, sel, code, body, want)
			}
		}
	}
	// A web page of another origin cannot POST it (no preflight guards a
	// body-less POST); the same origin can.
	g.expect("POST", "/api/v1/admin/delete"+q(`{job="backup"}`), "", 403, "another origin", "Origin", "http://evil.example")
	g.expect("POST", "/api/v1/admin/delete"+q(`{job="none"}`), "", 200, "", "Origin", g.url)
	g.expect("PUT", "/api/v1/admin/delete", "", 400, "no match[] selector")
	g.expect("PUT", "/api/v1/admin/delete"+q(`{job="backup"}`)+"&dry_run=maybe", "", 400, "dry_run")
	if g.pushed("/metrics") != before {
		t.Fatal("a refused delete changed the state")
	}

	type result struct {
		Status string `json:"status"`
		Data   struct {
			Groups []map[string]string `json:"groups"`
			DryRun bool                `json:"dry_run"`
		} `json:"data"`
	}
	del := func(method, query string) result {
		t.Helper()
		code, body, _ := g.do(method, "/api/v1/admin/delete"+query, nil)
		var r result
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil || r.Status != "success" {
			t.Fatalf("%s delete%s: %d %s", method, query, code, body)
		}
		return r
	}
	sel := q(`{branch=~"feature-.*"}`)
	dry := del("POST", sel+"&dry_run=true")
	if len(dry.Data.Groups) != 3 || !dry.Data.DryRun || g.pushed("/metrics") != before {
		t.Fatalf("dry run: %+v", dry)
	}
	done := del("PUT", sel)
	if len(done.Data.Groups) != 3 || done.Data.Groups[0]["job"] != "ci-build" || done.Data.Groups[1]["job"] != "nightly" {
		t.Fatalf("delete answered %+v", done.Data.Groups)
	}
	if got := jobsOf(g.apiGroups("")); got != "ci-build/main,backup/" {
		t.Fatalf("left after the delete: %s", got)
	}
	if again := del("PUT", sel); len(again.Data.Groups) != 0 {
		t.Fatalf("second delete matched %v", again.Data.Groups)
	}
}

func TestDeleteBySelectorNeedsTheAdminAPI(t *testing.T) {
	g := startGateway(t, nil)
	g.expect("PUT", "/metrics/job/a", "a 1\n", 200, "")
	g.expect("PUT", `/api/v1/admin/delete?match[]={job="a"}`, "", 404, "")
	if len(g.apiGroups("")) != 1 {
		t.Fatal("delete without the admin API changed the state")
	}
}

func TestWhoPushedNamesTheUserOnlyWhenBasicAuthIsConfigured(t *testing.T) {
	for _, configured := range []bool{false, true} {
		g := startGateway(t, func(o *httpapi.Options) { o.BasicAuthUsers = func() bool { return configured } })
		g.expect("PUT", "/metrics/job/j", "a 1\n", 200, "", "Authorization", "Basic Y2k6c2VjcmV0") // ci:secret
		by := g.apiGroups("")[0].LastPushBy
		if want := map[bool]string{false: "", true: "ci"}[configured]; by["user"] != want || by["remote_addr"] == "" {
			t.Errorf("basic_auth_users configured %v: last_push_by %v, want user %q", configured, by, want)
		}
	}
}
