package httpapi_test

import (
	"strings"
	"testing"
)

// TestTextParserReusedAfterEveryKindOfError: text parsers are reused
// across pushes. Bodies that break off anywhere in summaries and
// histograms (each refused) leave nothing behind for the next push to
// parse into: a good push after each stores exactly what it stored first.
func TestTextParserReusedAfterEveryKindOfError(t *testing.T) {
	g := startGateway(t, nil)
	const good = "# TYPE s summary\ns{a=\"1\",quantile=\"0.5\"} 1\ns_sum{a=\"1\"} 2\ns_count{a=\"1\"} 3\n" +
		"# TYPE h histogram\nh_bucket{b=\"2\",le=\"1\"} 1\nh_bucket{b=\"2\",le=\"+Inf\"} 2\nh_sum{b=\"2\"} 3\nh_count{b=\"2\"} 2\n" +
		"# HELP g a gauge\n# TYPE g gauge\ng{c=\"3\"} 4\n"
	// What the push stored, but for its time.
	stored := func() string {
		var out []string
		for _, l := range strings.Split(g.pushed("/metrics"), "\n") {
			if !strings.HasPrefix(l, "push_") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	g.expect("PUT", "/metrics/job/reuse", good, 200, "")
	want := stored()
	if !strings.Contains(want, `h_bucket{b="2",instance="",job="reuse",le="+Inf"} 2`) {
		t.Fatalf("first push stored:\n%s", want)
	}
	for cut := 1; cut < len(good); cut += 7 {
		g.expect("PUT", "/metrics/job/broken", good[:cut]+"\nbad{{\n", 400, "")
		g.expect("PUT", "/metrics/job/reuse", good, 200, "")
		if got := stored(); got != want {
			t.Fatalf("after a body broken at byte %d, the same push stores:\n%s\nwant:\n%s", cut, got, want)
		}
	}
}
