package httpapi_test

import (
	"bytes"
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

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
# TYPE c counter
c 1e+06
# TYPE s summary
s{quantile="0.5"} 1
s_sum 3
s_count 4
# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 2
h_sum 3
h_count 2
{"dotted.name","label.x"="v"} 7
u NaN
`, 200, "")
	compare("one group")
	nh := &dto.MetricFamily{Name: proto.String("nh"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Histogram: &dto.Histogram{
		SampleCount: proto.Uint64(2), SampleSum: proto.Float64(1), Schema: proto.Int32(1), ZeroThreshold: proto.Float64(0.001),
		PositiveSpan: []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(1)}}, PositiveDelta: []int64{2},
	}}}}
	var pb bytes.Buffer
	if _, err := protodelim.MarshalTo(&pb, nh); err != nil {
		t.Fatal(err)
	}
	g.expect("PUT", "/metrics/job/c", pb.String(), 200, "", "Content-Type", `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`)
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
