package httpapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

const protobufType = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

func delimited(t *testing.T, mfs ...*dto.MetricFamily) string {
	t.Helper()
	b, err := testutil.Delimited(mfs...)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func oneGauge(name string, typ dto.MetricType) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}}}}
}

// assertUntouched checks that the node still holds exactly its one group
// and serves every exposition format with its own metrics.
func assertUntouched(t *testing.T, g *gateway, what string) {
	t.Helper()
	if n := g.state.Len(); n != 1 {
		t.Fatalf("%s: the store holds %d groups, want 1", what, n)
	}
	for _, accept := range fuzzAccepts {
		code, body, h := g.do("GET", "/metrics", nil, "Accept", accept)
		if code != http.StatusOK {
			t.Fatalf("%s: /metrics (%s): %d %q", what, accept, code, body)
		}
		names, err := testutil.ParseExposition(h.Get("Content-Type"), []byte(body))
		if err != nil {
			t.Fatalf("%s: /metrics (%s) does not parse: %v", what, accept, err)
		}
		if !names["go_goroutines"] || !names["kept"] {
			t.Fatalf("%s: /metrics (%s) lacks the node's own or the kept metrics", what, accept)
		}
	}
}

// TestHostileRequestsGet400AndChangeNothing sends the requests that once
// crashed every node or blanked /metrics to a real node (raft on
// loopback): each gets 400 with a message and changes nothing.
func TestHostileRequestsGet400AndChangeNothing(t *testing.T) {
	for _, utf8Names := range []bool{false, true} {
		for _, unchecked := range []bool{false, true} {
			g := startGateway(t, func(o *httpapi.Options) {
				o.EnableUTF8Names, o.DisableConsistencyCheck, o.EnableAdminAPI = utf8Names, unchecked, true
			})
			wantKept := http.StatusOK
			if unchecked {
				wantKept = http.StatusAccepted
			}
			g.expect("PUT", "/metrics/job/keep", "kept 1\n", wantKept, "")

			gaugeAsCounter := oneGauge("c", dto.MetricType_COUNTER)
			for _, tc := range []struct {
				what, method, path, body, contentType, want string
			}{
				{"invalid UTF-8 grouping value", "PUT", "/metrics/job/j1/inst/%C3%28", "a 1\n", "", "not valid UTF-8"},
				{"invalid UTF-8 base64 grouping value", "PUT", "/metrics/job/j1/inst@base64/wyg", "a 1\n", "", "not valid UTF-8"},
				{"invalid UTF-8 job", "PUT", "/metrics/job@base64/wyg", "a 1\n", "", "not valid UTF-8"},
				{"invalid UTF-8 delete", "DELETE", "/metrics/job/j1/inst/%C3%28", "", "", "not valid UTF-8"},
				{"family without a name", "PUT", "/metrics/job/j", delimited(t, oneGauge("", dto.MetricType_GAUGE)), protobufType, "invalid metric name"},
				{"unknown type", "PUT", "/metrics/job/j", delimited(t, oneGauge("a", dto.MetricType(99))), protobufType, "cannot express"},
				{"gauge histogram", "PUT", "/metrics/job/j", delimited(t, oneGauge("a", dto.MetricType_GAUGE_HISTOGRAM)), protobufType, "cannot express"},
				{"histogram under grouping label le", "PUT", "/metrics/job/j/le/1", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "", "grouping label \"le\""},
				{"negative native bucket", "PUT", "/metrics/job/j", delimited(t, &dto.MetricFamily{Name: proto.String("nh"), Type: dto.MetricType_HISTOGRAM.Enum(),
					Metric: []*dto.Metric{{Histogram: &dto.Histogram{Schema: proto.Int32(0), ZeroThreshold: proto.Float64(0),
						PositiveSpan: []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(1)}}, PositiveDelta: []int64{-1}}}}}), protobufType, "negative count"},
			} {
				code, body, _ := g.do(tc.method, tc.path, strings.NewReader(tc.body), "Content-Type", tc.contentType)
				if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
					t.Errorf("utf8=%v unchecked=%v %s: %d %q, want 400 containing %q", utf8Names, unchecked, tc.what, code, body, tc.want)
				}
				assertUntouched(t, g, tc.what)
			}
			if utf8Names {
				// U___5f__5f_foo is __foo once unescaped (in legacy mode it
				// is a plain name).
				g.expect("PUT", "/metrics/job/j/U___5f__5f_foo/bar", "a 1\n", 400, "improper label name")
				assertUntouched(t, g, "escaped reserved grouping label")
				// A colon in a label name is written unquoted by the text
				// format, which no parser reads back.
				g.expect("PUT", "/metrics/job/j/U__a_3a_b/v", "a 1\n", 400, "invalid grouping label name")
				g.expect("PUT", "/metrics/job/j", "a{\"x:y\"=\"1\"} 1\n", 400, "colon")
				assertUntouched(t, g, "label names with a colon")
			} else {
				g.expect("PUT", "/metrics/job/j", delimited(t, oneGauge("a.b", dto.MetricType_GAUGE)), 400, "--push.enable-utf8-names", "Content-Type", protobufType)
				assertUntouched(t, g, "UTF-8 name in a protobuf push")
			}
			if unchecked {
				// What the consistency check would refuse (and record)
				// cannot slip in unchecked.
				g.expect("PUT", "/metrics/job/j", delimited(t, gaugeAsCounter), 400, "is not a COUNTER", "Content-Type", protobufType)
				g.expect("PUT", "/metrics/job/j/quantile/q", "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n", 400, "quantile")
				g.expect("PUT", "/metrics/job/j", "a{x=\"1\",x=\"2\"} 1\n", 400, "")
				assertUntouched(t, g, "unchecked pushes of inconsistent metrics")
			}

			// Snapshots that would poison the cluster are refused whole.
			for what, snap := range map[string][]byte{
				"empty job and reserved label":                     testutil.RawSnapshot(map[string]string{"job": "", "__bad": "x"}, oneGauge("g", dto.MetricType_GAUGE)),
				"gauge family with a counter":                      testutil.RawSnapshot(map[string]string{"job": "j"}, &dto.MetricFamily{Name: proto.String("g"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(1)}, Label: []*dto.LabelPair{{Name: proto.String("instance"), Value: proto.String("")}, {Name: proto.String("job"), Value: proto.String("j")}}}}}),
				"family without a name":                            testutil.RawSnapshot(map[string]string{"job": "j"}, oneGauge("", dto.MetricType_GAUGE)),
				"metric without its grouping labels (unsanitized)": testutil.RawSnapshot(map[string]string{"job": "j"}, oneGauge("g", dto.MetricType_GAUGE)),
			} {
				code, body, _ := g.do("PUT", "/api/v1/admin/restore", bytes.NewReader(snap))
				if code != http.StatusBadRequest || !strings.Contains(body, "not a valid group") {
					t.Errorf("restore of a snapshot with %s: %d %q", what, code, body)
				}
				assertUntouched(t, g, "restore of "+what)
			}
		}
	}
}

// brokenStore serves a family that cannot be encoded, which no write can
// store (the validator refuses it): the exposition must then fail with
// 500 and the reason, never answer a 200 cut short.
type brokenStore struct{ *fsm.FSM }

func (brokenStore) Families() []*dto.MetricFamily {
	return []*dto.MetricFamily{{Name: proto.String("broken"), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(1)}}}}}
}

func (b brokenStore) Exposed() []*fsm.ExposedFamily {
	mf := b.Families()[0]
	return []*fsm.ExposedFamily{{Header: &dto.MetricFamily{Name: mf.Name, Type: mf.Type}, Metrics: []*fsm.Metric{fsm.NewMetric(mf.Metric[0])}}}
}

func TestExpositionAnswers500InsteadOfATruncated200(t *testing.T) {
	reg := prometheus.NewRegistry()
	state := fsm.New(nil)
	log := &localLog{state: state}
	h := httpapi.New(httpapi.Options{Store: brokenStore{state}, Submitter: log, Readiness: log, Registry: reg}).Handler()
	for _, accept := range append(fuzzAccepts, "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text") {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept", accept)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if strings.HasPrefix(accept, "application/vnd.google.protobuf") {
			// Protobuf carries the metric as it is; Prometheus reads the
			// value of the family's type (none here) as absent.
			continue
		}
		if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "broken") {
			t.Errorf("/metrics (%s) with an unencodable family: %d %q", accept, rec.Code, rec.Body.String())
		}
	}
}

// TestSlowPathServesWhatPromhttpServes: promhttp logs a compression it
// cannot set up (Accept-Encoding "*;q=0") and serves the answer plain; the
// buffered slow path (the protobuf debug formats) must not turn that into
// a 500.
func TestSlowPathServesWhatPromhttpServes(t *testing.T) {
	g := newPathGateway(t, false, false)
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text")
	req.Header.Set("Accept-Encoding", "*;q=0")
	rec := httptest.NewRecorder()
	g.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "base_metric") {
		t.Fatalf("/metrics (protobuf text, no encoding acceptable): %d %q", rec.Code, rec.Body.String())
	}
}

// TestRemovingAFamilyWithoutMetricsKeepsServing: a protobuf push may store
// a family without metrics (upstream keeps it too). Deleting or replacing
// that group while another group holds the name with metrics once made
// ordering the exposition read past an empty list: the scrape panicked
// holding the state machine's lock, and the node stopped serving (every
// node, and again after a restart, since the log replays the same
// changes). Each step must keep /metrics whole in every format.
func TestRemovingAFamilyWithoutMetricsKeepsServing(t *testing.T) {
	g := startGateway(t, nil)
	g.expect("PUT", "/metrics/job/keep", "kept 1\nx 5\n", http.StatusOK, "")
	empty := delimited(t, &dto.MetricFamily{Name: proto.String("x"), Help: proto.String("empty"), Type: dto.MetricType_UNTYPED.Enum()})
	for _, step := range []struct{ what, method, path, body, contentType string }{
		{"a push of the empty family", "PUT", "/metrics/job/a", empty, protobufType},
		{"the group deleted", "DELETE", "/metrics/job/a", "", ""},
		{"the empty family pushed again", "PUT", "/metrics/job/a", empty, protobufType},
		{"the group replaced", "PUT", "/metrics/job/a", "other 1\n", ""},
	} {
		code, body, _ := g.do(step.method, step.path, strings.NewReader(step.body), "Content-Type", step.contentType)
		if code >= 300 {
			t.Fatalf("%s: %d %q", step.what, code, body)
		}
		for _, accept := range fuzzAccepts {
			code, body, h := g.do("GET", "/metrics", nil, "Accept", accept)
			if code != http.StatusOK {
				t.Fatalf("%s: /metrics (%s): %d %q", step.what, accept, code, body)
			}
			names, err := testutil.ParseExposition(h.Get("Content-Type"), []byte(body))
			if err != nil || !names["x"] || !names["kept"] {
				t.Fatalf("%s: /metrics (%s) lacks x or kept (%v)", step.what, accept, err)
			}
		}
	}
}
