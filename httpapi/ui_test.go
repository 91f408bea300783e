package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"html"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

const protoDelimited = `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`

// uiPage fetches a UI page and checks the answer is HTML.
func (g *gateway) uiPage(path string) string {
	g.t.Helper()
	code, body, h := g.do("GET", path, nil)
	if code != 200 || h.Get("Content-Type") != "text/html; charset=utf-8" {
		g.t.Fatalf("GET %s: %d %q\n%s", path, code, h.Get("Content-Type"), body)
	}
	if h.Get("Content-Security-Policy") == "" {
		g.t.Fatalf("GET %s: no Content-Security-Policy", path)
	}
	return body
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Fatalf("%s: missing %q in\n%s", what, w, body)
		}
	}
}

var (
	// urlAttr finds every attribute holding a URL the page loads, links to
	// or sends requests to.
	urlAttr  = regexp.MustCompile(`\s(?:href|src|action|data-delete-url|data-wipe-url)="([^"]*)"`)
	assetRef = regexp.MustCompile(`(?:href|src)="([^"]*/static/([^"?]+)\?v=[0-9a-f]+)"`)
)

// urlsOf returns the URLs in a page's attributes, unescaped.
func urlsOf(page string) []string {
	var out []string
	for _, m := range urlAttr.FindAllStringSubmatch(page, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

// pushUIFixture pushes every kind of family the metrics page renders.
func pushUIFixture(g *gateway, prefix string) {
	g.t.Helper()
	g.expect("PUT", prefix+"/metrics/job/batch/instance/db1", `# HELP jobs_total Jobs processed.
# TYPE jobs_total counter
jobs_total{kind="full"} 12
jobs_total{kind="incremental"} 3
# HELP temp_celsius Temperature.
# TYPE temp_celsius gauge
temp_celsius 21.5
# HELP latency_seconds Job latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.5"} 1
latency_seconds_bucket{le="1"} 4
latency_seconds_bucket{le="+Inf"} 5
latency_seconds_sum 3.25
latency_seconds_count 5
# HELP size_bytes Sizes.
# TYPE size_bytes summary
size_bytes{quantile="0.5"} 100
size_bytes{quantile="0.99"} 900
size_bytes_sum 2000
size_bytes_count 7
plain 42
`, 200, "")
	nh := &dto.MetricFamily{Name: proto.String("native_seconds"), Help: proto.String("A native histogram."), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Histogram: &dto.Histogram{
		SampleCount: proto.Uint64(6), SampleSum: proto.Float64(1.5), Schema: proto.Int32(0), ZeroThreshold: proto.Float64(0.001), ZeroCount: proto.Uint64(1),
		PositiveSpan: []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(2)}}, PositiveDelta: []int64{2, 1},
	}}}}
	var pb bytes.Buffer
	if _, err := protodelim.MarshalTo(&pb, nh); err != nil {
		g.t.Fatal(err)
	}
	g.expect("PUT", prefix+"/metrics/job/native", pb.String(), 200, "", "Content-Type", protoDelimited)
	// A push rejected by the consistency check creates the group with a
	// failure time: the page shows the "last push failed" badge.
	g.expect("PUT", prefix+"/metrics/job/clash", "# TYPE temp_celsius counter\ntemp_celsius 1\n", 400, "")
}

func TestUIMetricsPage(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) { o.EnableAdminAPI = true })
	page := g.uiPage("/")
	mustContain(t, "empty metrics page", page, `id="no-groups"`, `0 groups`)
	if strings.Contains(page, `data-wipe-url`) {
		t.Fatal("Delete all offered with no groups")
	}

	pushUIFixture(g, "")
	page = g.uiPage("/")
	mustContain(t, "metrics page", page,
		// groups: job first, then the other grouping labels
		`<span class="label"><span class="n">job</span>="batch"</span><span class="label"><span class="n">instance</span>="db1"</span>`,
		// family name, type, help, last push time
		`<h3>jobs_total <span class="badge info">counter</span>`, `<p class="help">Jobs processed.</p>`, `pushed <time datetime="`,
		// counter, gauge and untyped samples with their labels
		`<span class="n">kind</span>="full"</span>`, `<td class="num">12</td>`, `<td class="num">21.5</td>`,
		`<h3>plain <span class="badge info">untyped</span>`, `<td class="num">42</td>`,
		// histogram buckets, count, sum
		`<span class="k">le 0.5</span><span class="v">1</span>`, `<span class="k">le &#43;Inf</span><span class="v">5</span>`, `<td class="num">5</td><td class="num">3.25</td>`,
		// summary quantiles, count, sum
		`<span class="k">φ 0.99</span><span class="v">900</span>`, `<td class="num">7</td><td class="num">2000</td>`,
		// native histogram: count, sum and buckets
		`<td class="num">6</td><td class="num">1.5</td>`, `native histogram: schema 0`, `<span class="k">[-0.001, 0.001]</span><span class="v">1</span>`, `<span class="k">(1, 2]</span><span class="v">3</span>`,
		// the failed push, push_time_seconds, the delete buttons
		`last push failed`, `<h3>push_time_seconds`, `Delete group`, `data-wipe-url="/api/v1/admin/wipe"`,
		`3 groups`,
	)
	// Groups by job; push_time_seconds also as a time.
	if a, b, c := strings.Index(page, `="batch"`), strings.Index(page, `="clash"`), strings.Index(page, `="native"`); !(a < b && b < c) {
		t.Fatalf("groups not ordered by job: %d %d %d", a, b, c)
	}
	if !regexp.MustCompile(`<td class="num">1\.\d+e(?:\+|&#43;)09<div class="note">20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC</div></td>`).MatchString(page) {
		t.Fatal("push_time_seconds not shown as a time")
	}
	if n := strings.Count(page, "last push failed"); n != 1 {
		t.Fatalf("%d failed badges, want 1 (group clash only)", n)
	}
	// No admin API, no "Delete all".
	off := startGateway(t, nil)
	off.expect("PUT", "/metrics/job/x", "x 1\n", 200, "")
	if p := off.uiPage("/"); strings.Contains(p, "data-wipe-url") || !strings.Contains(p, "data-delete-url") {
		t.Fatal("Delete all must need the admin API; Delete group must not")
	}
}

// TestUIDeleteURLs checks that the Delete group button's URL deletes
// exactly its group, for values needing base64 (slashes, empty, unicode).
func TestUIDeleteURLs(t *testing.T) {
	g := startGateway(t, nil)
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	g.expect("PUT", "/metrics/job@base64/"+b64("a/b")+"/path@base64/"+b64("/var/x y")+"/empty@base64/=", "m 1\n", 200, "")
	g.expect("PUT", "/metrics/job/plain/instance/ü", "m 2\n", 200, "")
	g.expect("PUT", "/metrics/job/plain", "m 3\n", 200, "")
	page := g.uiPage("/")
	var dels []string
	for _, u := range urlsOf(page) {
		if strings.HasPrefix(u, "/metrics/") {
			dels = append(dels, u)
		}
	}
	if len(dels) != 3 {
		t.Fatalf("want 3 delete URLs, got %q", dels)
	}
	for i, u := range dels {
		g.expect("DELETE", u, "", 202, "")
		if n := len(g.state.Groups()); n != 2-i {
			t.Fatalf("after DELETE %s: %d groups left, want %d", u, n, 2-i)
		}
	}
}

func TestUIEscapesHTML(t *testing.T) {
	g := startGateway(t, nil)
	evil := `<script>alert("x")</script>`
	g.expect("PUT", "/metrics/job/evil/who@base64/"+base64.RawURLEncoding.EncodeToString([]byte(evil)),
		"# HELP m help with <b>markup</b> & \"quotes\"\n# TYPE m gauge\nm{v=\"<img src=x onerror=alert(1)>\"} 1\n", 200, "")
	page := g.uiPage("/")
	for _, bad := range []string{"<script>alert", "<b>markup", "<img src=x"} {
		if strings.Contains(page, bad) {
			t.Fatalf("unescaped %q in page:\n%s", bad, page)
		}
	}
	mustContain(t, "escaped page", page, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`, `help with &lt;b&gt;markup&lt;/b&gt; &amp; &#34;quotes&#34;`, `&lt;img src=x onerror=alert(1)&gt;`)
	// The filter's data attribute holds the labels as JSON, escaped for
	// the attribute; unescaped it is the JSON the script parses.
	m := regexp.MustCompile(`data-labels="([^"]*)"`).FindStringSubmatch(page)
	if m == nil || html.UnescapeString(m[1]) != `{"job":"evil","who":"\u003cscript\u003ealert(\"x\")\u003c/script\u003e"}` {
		t.Fatalf("data-labels: %q", m)
	}
	// The only <script> element is the embedded asset.
	if n := strings.Count(page, "<script"); n != 1 || !strings.Contains(page, `<script src="/static/ui.js?v=`) {
		t.Fatalf("%d <script> elements", n)
	}
}

func TestUIStatusPage(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) {
		o.Flags = map[string]string{"web.listen-address": ":9091", "a.first": "1", "z.last": "", "web.enable-admin-api": "false"}
		o.BuildInfo = map[string]string{"version": "1.2.3", "revision": "abc<def>", "goVersion": "go1"}
	})
	page := g.uiPage("/status")
	mustContain(t, "status page", page, `<th>version</th><td>1.2.3</td>`, `<th>revision</th><td>abc&lt;def&gt;</td>`,
		`<th>web.listen-address</th><td>:9091</td>`, `Started`, `Uptime`)
	// Flags and build information are sorted by name.
	for _, id := range []string{"flags", "build-info"} {
		table := page[strings.Index(page, `id="`+id+`"`):]
		table = table[:strings.Index(table, "</table>")]
		var names []string
		for _, m := range regexp.MustCompile(`<th>([^<]*)</th>`).FindAllStringSubmatch(table, -1) {
			names = append(names, m[1])
		}
		if len(names) < 3 || !sort.StringsAreSorted(names) {
			t.Fatalf("%s not sorted: %q", id, names)
		}
	}
	// The nav bar links every page and marks the current one.
	mustContain(t, "nav", page, `<a href="/">Metrics</a>`, `<a href="/status" class="active" aria-current="page">Status</a>`, `<a href="/cluster">Cluster</a>`)
}

func TestUIClusterPage(t *testing.T) {
	g := startGateway(t, nil)
	g.expect("PUT", "/metrics/job/j", "a 1\n", 200, "")
	// raft counts an entry applied just after the state machine applied
	// it (and the push was answered): wait until it has.
	const noLag = `<div class="v" id="lag" title="commit index − applied index">0</div>`
	page := g.uiPage("/cluster")
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(page, noLag) && time.Now().Before(deadline); page = g.uiPage("/cluster") {
		time.Sleep(10 * time.Millisecond)
	}
	mustContain(t, "cluster page", page, `<div class="v" id="leader">n1</div>`, `<div class="v ok">Leader</div>`,
		`<tr data-member="n1">`, `<span class="badge ok">leader</span>`, `<span class="badge info">this node</span>`,
		`<span class="badge ok">alive</span>`, `<td>voter</td>`, `id="commit-index"`, `id="applied-index"`,
		`<div class="v" id="lag" title="commit index − applied index">0</div>`, `id="snapshot">none yet</div>`, `href="/api/v1/cluster"`)
	if got := regexp.MustCompile(`<tr data-member=`).FindAllString(page, -1); len(got) != 1 {
		t.Fatalf("%d member rows, want 1", len(got))
	}

	none := startGateway(t, func(o *httpapi.Options) { o.Cluster = nil })
	mustContain(t, "cluster page without cluster", none.uiPage("/cluster"), `id="no-cluster"`)
}

// TestUIRoutePrefix checks every page under --web.route-prefix, and that
// links follow the path of --web.external-url when there is one.
func TestUIRoutePrefix(t *testing.T) {
	for _, tc := range []struct{ route, external, links string }{
		{"/pg", "", "/pg"},
		{"/internal", "/proxy/pg", "/proxy/pg"},
	} {
		g := startGateway(t, func(o *httpapi.Options) {
			o.RoutePrefix, o.ExternalPathPrefix, o.EnableAdminAPI = tc.route, tc.external, true
		})
		pushUIFixture(g, tc.route)
		for _, p := range []string{"/", "/status", "/cluster"} {
			page := g.uiPage(tc.route + p)
			urls := urlsOf(page)
			if len(urls) < 6 {
				t.Fatalf("%s%s: only %q", tc.route, p, urls)
			}
			for _, u := range urls {
				if !strings.HasPrefix(u, tc.links+"/") {
					t.Fatalf("%s%s: URL %q does not start with %s/", tc.route, p, u, tc.links)
				}
			}
			// Assets are served under the route prefix.
			for _, m := range assetRef.FindAllStringSubmatch(page, -1) {
				internal := tc.route + strings.TrimPrefix(html.UnescapeString(m[1]), tc.links)
				if code, _, _ := g.do("GET", internal, nil); code != 200 {
					t.Fatalf("GET %s: %d", internal, code)
				}
			}
		}
		for _, p := range []string{"/status", "/cluster", "/static/ui.css"} {
			if code, _, _ := g.do("GET", p, nil); code != 404 {
				t.Fatalf("GET %s without the prefix: %d, want 404", p, code)
			}
		}
	}
}

func TestUIStaticAssets(t *testing.T) {
	g := startGateway(t, nil)
	page := g.uiPage("/")
	types := map[string]string{"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8", "favicon.svg": "image/svg+xml"}
	seen := map[string]bool{}
	for _, m := range assetRef.FindAllStringSubmatch(page, -1) {
		u, name := html.UnescapeString(m[1]), m[2]
		seen[name] = true
		code, body, h := g.do("GET", u, nil)
		if code != 200 || h.Get("Content-Type") != types[name] || body == "" {
			t.Fatalf("GET %s: %d %q", u, code, h.Get("Content-Type"))
		}
		if h.Get("Cache-Control") != "public, max-age=31536000, immutable" || h.Get("ETag") == "" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s: headers %v", u, h)
		}
		// Without the current version: revalidate, 304 on a match.
		plain := u[:strings.Index(u, "?")]
		code, _, h2 := g.do("GET", plain, nil)
		if code != 200 || h2.Get("Cache-Control") != "no-cache" {
			t.Fatalf("GET %s: %d %q", plain, code, h2.Get("Cache-Control"))
		}
		if code, _, _ := g.do("GET", plain, nil, "If-None-Match", h.Get("ETag")); code != http.StatusNotModified {
			t.Fatalf("GET %s If-None-Match: %d", plain, code)
		}
	}
	if len(seen) != len(types) {
		t.Fatalf("page references %v, want %v", seen, types)
	}
	for _, p := range []string{"/static/", "/static/nope.js", "/static/../ui.go", "/static/templates/layout.html"} {
		if code, _, _ := g.do("GET", p, nil); code != 404 {
			t.Fatalf("GET %s: %d, want 404", p, code)
		}
	}
}

// TestUINoExternalURLs checks that the pages and assets reference nothing
// outside this node: no scheme, no protocol-relative URL, no CDN.
func TestUINoExternalURLs(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) { o.EnableAdminAPI = true })
	pushUIFixture(g, "")
	external := regexp.MustCompile(`(?i)(https?:|ftp:|wss?:)?//[a-z0-9.-]|@import`)
	cssURL := regexp.MustCompile(`(?i)url\(`)
	var texts []string
	for _, p := range []string{"/", "/status", "/cluster"} {
		page := g.uiPage(p)
		for _, u := range urlsOf(page) {
			if !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
				t.Fatalf("%s: URL %q is not a path on this node", p, u)
			}
		}
		texts = append(texts, page)
		for _, m := range assetRef.FindAllStringSubmatch(page, -1) {
			_, body, _ := g.do("GET", html.UnescapeString(m[1]), nil)
			// The SVG namespace is a name, not something fetched.
			texts = append(texts, strings.ReplaceAll(body, `xmlns="http://www.w3.org/2000/svg"`, ""))
			if m[2] == "ui.css" && cssURL.MatchString(body) {
				t.Fatal("the stylesheet loads something with url()")
			}
		}
	}
	for _, text := range texts {
		if m := external.FindString(text); m != "" {
			i := strings.Index(text, m)
			t.Fatalf("external reference %q near %q", m, text[max(0, i-80):min(len(text), i+80)])
		}
	}
}
