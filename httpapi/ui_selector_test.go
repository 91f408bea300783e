package httpapi_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

// TestUIMetricsPageSelector checks the metrics page's selector box: the
// server shows only the matching groups, offers "Delete all matching" (admin
// API only) with the admin delete's URL, and answers 400 with the parser's
// message for a selector that does not parse or matches everything.
func TestUIMetricsPageSelector(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) { o.EnableAdminAPI = true })
	g.expect("PUT", "/metrics/job/ci-build/branch/feature-a", "a 1\n", 200, "")
	g.expect("PUT", "/metrics/job/ci-build/branch/main", "a 1\n", 200, "")
	g.expect("PUT", "/metrics/job/backup", "a 1\n", 200, "")

	sel := `{job="ci-build", branch=~"feature-.*"}`
	page := g.uiPage("/?" + url.Values{"match[]": {sel}}.Encode())
	mustContain(t, "selected page", page,
		`="feature-a"`, `1 of 3 group match`, `data-total="3"`,
		`value="{job=&#34;ci-build&#34;, branch=~&#34;feature-.*&#34;}"`,
		`id="delete-matching" data-delete-matching-url="/api/v1/admin/delete?match%5B%5D=%7Bjob%3D%22ci-build%22%2C`,
		`id="selector-clear"`)
	for _, not := range []string{`="main"`, `="backup"`, `data-wipe-url`} {
		if strings.Contains(page, not) {
			t.Errorf("selected page holds %s", not)
		}
	}

	// Several match[] are OR-ed, as in the API; an empty box selects nothing.
	page = g.uiPage("/?match[]=" + url.QueryEscape(`{branch="main"}`) + "&match[]=" + url.QueryEscape(`{job="backup"}`))
	mustContain(t, "two selectors", page, `="main"`, `="backup"`, `2 of 3 groups match`)
	page = g.uiPage("/?match[]=")
	mustContain(t, "empty selector", page, `3 groups`, `data-wipe-url`)
	if strings.Contains(page, `id="selector-clear"`) {
		t.Error("an empty selector box offers Clear")
	}
	mustContain(t, "no match", g.uiPage("/?match[]="+url.QueryEscape(`{job="none"}`)), `id="no-match"`, `0 of 3 groups match`)

	for sel, msg := range map[string]string{
		`{job="ci-build"`: "unexpected end of input",
		`{job=~".*"}`:     "must not match the empty string",
		`{__name__="a"}`:  "__name__",
	} {
		code, body, _ := g.do("GET", "/?"+url.Values{"match[]": {sel}}.Encode(), nil)
		if code != 400 {
			t.Fatalf("selector %s: page answered %d, want 400", sel, code)
		}
		mustContain(t, "bad selector "+sel, body, `id="selector-error"`, msg)
		for _, not := range []string{`class="group"`, `id="no-groups"`, `id="delete-matching"`} {
			if strings.Contains(body, not) {
				t.Errorf("selector %s: page holds %s", sel, not)
			}
		}
	}

	// Without the admin API the selector filters, but deletes nothing.
	off := startGateway(t, nil)
	off.expect("PUT", "/metrics/job/x", "a 1\n", 200, "")
	if p := off.uiPage("/?match[]=" + url.QueryEscape(`{job="x"}`)); strings.Contains(p, "delete-matching") || !strings.Contains(p, "1 of 1 group match") {
		t.Error("Delete all matching must need the admin API")
	}
}

// TestUIMetricsPageExpiryAndWhoPushed checks "expires in" (own expiry and
// --push.expire-after, none for a group that never expires) and "by" with
// the pusher's address.
func TestUIMetricsPageExpiryAndWhoPushed(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	g := startGateway(t, func(o *httpapi.Options) {
		o.Now = func() time.Time { return now }
		o.ExpireAfter = time.Hour
	})
	g.expect("PUT", "/metrics/job/own", "a 1\n", 200, "", httpapi.ExpireAfterHeader, "90s")
	g.expect("PUT", "/metrics/job/flag", "a 1\n", 200, "")
	g.expect("PUT", "/metrics/job/never", "a 1\n", 200, "", httpapi.ExpireAfterHeader, "0")
	now = now.Add(30 * time.Second)
	page := g.uiPage("/")
	mustContain(t, "expiry", page,
		`title="expires 1m30s after its last push, at 2026-12-05 10:01:30.000 UTC">expires in 1m</span>`,
		`title="expires 1h after its last push, at 2026-12-05 11:00:00.000 UTC">expires in 59m30s</span>`,
		`<span class="pushed-by">by 127.0.0.1:`)
	if n := strings.Count(page, `class="badge warn expires"`); n != 2 {
		t.Errorf("%d expiry badges, want 2 (the group that never expires has none)", n)
	}
	if n := strings.Count(page, `class="pushed-by"`); n != 3 {
		t.Errorf("%d pushers shown, want 3", n)
	}
	now = now.Add(time.Hour)
	mustContain(t, "past deadline", g.uiPage("/"), `>expires now</span>`)
}
