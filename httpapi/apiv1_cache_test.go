package httpapi_test

import (
	"fmt"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

// TestAPIMetricsCachedEqualsUncached checks that /api/v1/metrics served
// from the per-group cache is byte for byte the JSON built from scratch
// for the same groups, through pushes (PUT, POST, rejected), deletes and
// wipes that invalidate part or all of the cache.
func TestAPIMetricsCachedEqualsUncached(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) { o.EnableAdminAPI = true; o.EnableUTF8Names = true })
	compare := func(round string) {
		t.Helper()
		for pass := 0; pass < 2; pass++ { // the second pass is served from the cache alone
			code, got, h := g.do("GET", "/api/v1/metrics", nil)
			want, err := httpapi.UncachedAPIMetricsForTest(g.state.Groups())
			if err != nil {
				t.Fatal(err)
			}
			if code != 200 || h.Get("Content-Type") != "application/json" {
				t.Fatalf("%s: %d %v", round, code, h)
			}
			if got != string(want) {
				t.Fatalf("%s (pass %d): cached /api/v1/metrics differs\n--- got\n%s\n--- want\n%s", round, pass, got, want)
			}
		}
	}
	compare("empty")
	g.expect("PUT", "/metrics/job/a/instance/i1", `# HELP m A gauge with <html> & "quotes".
# TYPE m gauge
m{x="1"} 1
m{x="<2>"} 2.5
`+otherTypesBody+"u NaN\n", 200, "")
	compare("one group")
	putNativeHistogram(t, g, nil)
	for i := 0; i < 20; i++ {
		g.expect("PUT", fmt.Sprintf("/metrics/job/many/instance/%d", i), fmt.Sprintf("# TYPE m gauge\nm{x=\"%d\"} %d\n", i, i), 200, "")
	}
	compare("many groups")
	g.expect("PUT", "/metrics/job/many/instance/3", "# TYPE m gauge\nm{x=\"3\"} 33\n", 200, "")
	g.expect("POST", "/metrics/job/a/instance/i1", "# TYPE m gauge\nm{x=\"1\"} 10\n", 200, "")
	compare("after PUT and POST")
	g.expect("PUT", "/metrics/job/many/instance/4", "# TYPE m counter\nm 1\n", 400, "")
	compare("after a rejected push (last_push_successful false)")
	g.expect("DELETE", "/metrics/job/many/instance/5", "", 202, "")
	g.expect("DELETE", "/metrics/job/c", "", 202, "")
	compare("after deletes")
	g.expect("PUT", "/metrics/job/many/instance/5", "# TYPE m gauge\nm{x=\"5\"} 5\n", 200, "")
	compare("group deleted and created again")
	g.expect("PUT", "/api/v1/admin/wipe", "", 202, "")
	compare("after a wipe")
	g.expect("PUT", "/metrics/job/a/instance/i1", "# TYPE m gauge\nm 1\n", 200, "")
	compare("after a wipe and a push")
}
