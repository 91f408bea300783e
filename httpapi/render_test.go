package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

// TestCachedExpositionEqualsPromhttp checks that /metrics assembled from
// cached bytes is byte for byte what promhttp writes for the same
// families, for every cached format and escaping scheme, also after
// changes that invalidate part of the cache.
func TestCachedExpositionEqualsPromhttp(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) { o.EnableUTF8Names = true })
	g.expect("PUT", "/metrics/job/a/instance/i1", `# HELP m A gauge.
# TYPE m gauge
m{x="1"} 1
m{x="2"} 2.5
`+otherTypesBody, 200, "")
	g.expect("POST", "/metrics/job/b", "# HELP m Other help.\n# TYPE m gauge\nm{x=\"0\"} -1\n# TYPE go_info gauge\ngo_info{version=\"pushed\"} 1\n", 200, "")
	putNativeHistogram(t, g, proto.String("seconds"))

	accepts := []string{
		"",
		"text/plain; version=0.0.4",
		"text/plain; version=0.0.4; escaping=allow-utf-8",
		"text/plain; version=0.0.4; escaping=dots",
		"text/plain; version=0.0.4; escaping=values",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8",
	}
	compare := func(round string) {
		for _, accept := range accepts {
			for _, gz := range []bool{false, true} {
				got, gotType := scrape(t, g.url+"/metrics", accept, gz)
				want, wantType := promhttpScrape(t, g, accept)
				if gotType != wantType {
					t.Fatalf("%s, Accept %q: Content-Type %q, promhttp %q", round, accept, gotType, wantType)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s, Accept %q, gzip %v: cached exposition differs from promhttp's\n--- got\n%q\n--- want\n%q", round, accept, gz, got, want)
				}
			}
		}
	}
	compare("first scrape")
	compare("cached")
	g.expect("PUT", "/metrics/job/a/instance/i1", "# HELP m A gauge.\n# TYPE m gauge\nm{x=\"1\"} 10\nm{x=\"3\"} 3\n", 200, "")
	g.expect("DELETE", "/metrics/job/c", "", 202, "")
	compare("after changes")
}

// otherTypesBody is a text push of a counter, a summary, a classic
// histogram and a family whose name and label name need quoting.
const otherTypesBody = `# TYPE c counter
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
`

// putNativeHistogram PUTs a family with one native histogram (and the
// given unit, if any) to the group job=c, in delimited protobuf.
func putNativeHistogram(t *testing.T, g *gateway, unit *string) {
	t.Helper()
	nh := &dto.MetricFamily{Name: proto.String("nh"), Unit: unit, Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Histogram: &dto.Histogram{
		SampleCount: proto.Uint64(2), SampleSum: proto.Float64(1), Schema: proto.Int32(1), ZeroThreshold: proto.Float64(0.001),
		PositiveSpan: []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(1)}}, PositiveDelta: []int64{2},
	}}}}
	var pb bytes.Buffer
	if _, err := protodelim.MarshalTo(&pb, nh); err != nil {
		t.Fatal(err)
	}
	g.expect("PUT", "/metrics/job/c", pb.String(), 200, "", "Content-Type", `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`)
}

// scrape GETs url with the Accept header, decompressing gzip.
func scrape(t *testing.T, url, accept string, gz bool) ([]byte, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	tr := &http.Transport{DisableCompression: true}
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if gz {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Accept %q: no gzip response", accept)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return dropSelf(b, resp.Header.Get("Content-Type")), resp.Header.Get("Content-Type")
}

// promhttpScrape is the reference: promhttp over the same families.
func promhttpScrape(t *testing.T, g *gateway, accept string) ([]byte, string) {
	t.Helper()
	h := promhttp.HandlerFor(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		self, err := g.reg.Gather()
		return httpapi.MergeFamiliesForTest(self, g.state.Families()), err
	}), promhttp.HandlerOpts{})
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return dropSelf(rec.Body.Bytes(), rec.Header().Get("Content-Type")), rec.Header().Get("Content-Type")
}

// dropSelf removes the node's own families, whose values move between two
// scrapes, keeping everything pushed (and go_info, pushed too).
func dropSelf(b []byte, contentType string) []byte {
	keep := func(name string) bool {
		return !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "pushgateway_") || name == "go_info"
	}
	if strings.Contains(contentType, "encoding=delimited") {
		var out bytes.Buffer
		r := bytes.NewReader(b)
		for r.Len() > 0 {
			start := len(b) - r.Len()
			mf := &dto.MetricFamily{}
			if err := protodelim.UnmarshalFrom(r, mf); err != nil {
				return append([]byte("undecodable: "), b...)
			}
			if keep(mf.GetName()) {
				out.Write(b[start : len(b)-r.Len()])
			}
		}
		return out.Bytes()
	}
	var out bytes.Buffer
	keeping := true
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			name := strings.Fields(line)[2]
			keeping = keep(strings.Trim(name, `"`))
		}
		if keeping {
			out.WriteString(line)
		}
	}
	return out.Bytes()
}
