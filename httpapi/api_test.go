package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/cluster"
	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/clusterapi"
)

// gateway is one real node (raft on loopback) behind the API.
type gateway struct {
	t     *testing.T
	url   string
	node  *cluster.Node
	quit  chan struct{}
	state *fsm.FSM
	reg   *prometheus.Registry
}

func startGateway(t *testing.T, mutate func(*httpapi.Options)) *gateway {
	t.Helper()
	g := startGatewayWith(t, mutate)
	g.t = t
	return g
}

func startGatewayTB(tb testing.TB) *gateway { return startGatewayWith(tb, nil) }

func startGatewayWith(t testing.TB, mutate func(*httpapi.Options)) *gateway {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	reserved, err := httpapi.ReservedFamilies(reg)
	if err != nil {
		t.Fatal(err)
	}
	state := fsm.New(reserved)
	quit := make(chan struct{})
	opts := httpapi.Options{
		Store: state, Registry: reg,
		Flags: map[string]string{"web.enable-admin-api": "false"}, BuildInfo: map[string]string{"version": "test"},
		Quit: quit,
	}
	// The leader stamps commands with the node's clock: a test's clock
	// (Options.Now) is the node's.
	clock := opts
	if mutate != nil {
		mutate(&clock)
	}
	node, err := cluster.Start(cluster.Config{DataDir: t.TempDir(), NodeName: "n1", RaftListen: "127.0.0.1:0", GossipListen: "127.0.0.1:0",
		LocalNetwork: true, State: state, WriteTimeout: 5 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	opts.Submitter, opts.Readiness, opts.Cluster = node, node, clusterapi.Adapt(node)
	if mutate != nil {
		mutate(&opts)
	}
	srv := httptest.NewServer(httpapi.New(opts).Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := node.Shutdown(); err != nil {
			t.Error(err)
		}
	})
	g := &gateway{url: srv.URL, node: node, quit: quit, state: state, reg: reg}
	deadline := time.Now().Add(10 * time.Second)
	for node.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("node not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return g
}

func (g *gateway) do(method, path string, body io.Reader, header ...string) (int, string, http.Header) {
	g.t.Helper()
	req, err := http.NewRequest(method, g.url+path, body)
	if err != nil {
		g.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func (g *gateway) expect(method, path, body string, wantCode int, wantBody string, header ...string) {
	g.t.Helper()
	code, got, _ := g.do(method, path, strings.NewReader(body), header...)
	if code != wantCode || (wantBody != "" && !strings.Contains(got, wantBody)) {
		g.t.Fatalf("%s %s: got %d %q, want %d containing %q", method, path, code, got, wantCode, wantBody)
	}
}

// pushed returns the job-labelled lines of the text exposition.
func (g *gateway) pushed(path string) string {
	g.t.Helper()
	_, body, _ := g.do("GET", path, nil)
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, `job="`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestPushStatusCodesAndMessages(t *testing.T) {
	g := startGateway(t, nil)
	g.expect("PUT", "/metrics/job/j", "a 1\n", 200, "")
	g.expect("POST", "/metrics/job/j/instance/i", "a 1\n", 200, "")
	g.expect("DELETE", "/metrics/job/j", "", 202, "")
	g.expect("PUT", "/metrics/job/j/in-valid/x", "a 1\n", 400, `improper label name "in-valid"`)
	g.expect("PUT", "/metrics/job/j/__x/x", "a 1\n", 400, `improper label name "__x"`)
	g.expect("PUT", "/metrics/job/j/a", "a 1\n", 400, `odd number of components in label string "/a"`)
	g.expect("PUT", "/metrics/job@base64/=", "a 1\n", 400, "job name is required")
	g.expect("PUT", "/metrics/job/j", "a 1 1234\n", 400, "pushed metrics are invalid or inconsistent with existing metrics: pushed metrics must not have timestamps")
	g.expect("PUT", "/metrics/job/j", "a{ 1\n", 400, "text format parsing error")
	g.expect("PUT", "/metrics/job/j", "# TYPE c counter\nc 1\n", 200, "")
	g.expect("PUT", "/metrics/job/k", "# TYPE c gauge\nc 1\n", 400, "pushed metrics are invalid or inconsistent with existing metrics: collected metric \"c\"")
	g.expect("PUT", "/metrics/job/j/l@base64/!!", "a 1\n", 400, "invalid base64 encoding for label l=\"!!\"")
	g.expect("PUT", "/metrics/job@base64/!!", "a 1\n", 400, "invalid base64 encoding in job name")
	g.expect("PUT", "/metrics/job@base64/Zm9vL2Jhcg/l@base64/=", "b 1\n", 200, "")
	if got := g.pushed("/metrics"); !strings.Contains(got, `b{instance="",job="foo/bar",l=""} 1`) {
		t.Fatalf("base64 job and empty value:\n%s", got)
	}
}

func TestContentEncodingsAndProtobuf(t *testing.T) {
	g := startGateway(t, nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, "gz 1\n")
	zw.Close()
	g.expect("PUT", "/metrics/job/gz", gz.String(), 200, "", "Content-Encoding", "GZIP")
	g.expect("PUT", "/metrics/job/gz2", "this is not a gzip stream", 400, "gzip: invalid header", "Content-Encoding", "gzip")

	var pb bytes.Buffer
	mf := &dto.MetricFamily{Name: proto.String("pb"), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(7)}}}}
	if _, err := protodelim.MarshalTo(&pb, mf); err != nil {
		t.Fatal(err)
	}
	g.expect("POST", "/metrics/job/pb", pb.String(), 200, "", "Content-Type", `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`)
	g.expect("POST", "/metrics/job/pb2", pb.String()[:len(pb.String())-2], 400, "", "Content-Type", `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`)
	got := g.pushed("/metrics")
	for _, want := range []string{`gz{instance="",job="gz"} 1`, `pb{instance="",job="pb"} 7`} {
		if !strings.Contains(got, want) {
			t.Fatalf("missing %s in\n%s", want, got)
		}
	}
}

func TestMetricsContentNegotiation(t *testing.T) {
	g := startGateway(t, nil)
	g.expect("PUT", "/metrics/job/j", "# TYPE a gauge\na 1\n", 200, "")

	code, body, h := g.do("GET", "/metrics", nil, "Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/vnd.google.protobuf") {
		t.Fatalf("protobuf scrape: %d %s", code, h.Get("Content-Type"))
	}
	dec := expfmt.NewDecoder(strings.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim))
	found := false
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		found = found || mf.GetName() == "a"
	}
	if !found {
		t.Fatal("pushed family missing from protobuf scrape")
	}

	code, _, h = g.do("GET", "/metrics", nil, "Accept-Encoding", "gzip")
	if code != 200 || h.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip scrape: %d %q", code, h.Get("Content-Encoding"))
	}
	code, _, h = g.do("GET", "/metrics", nil, "Accept", "application/openmetrics-text; version=1.0.0")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("no OpenMetrics, as upstream: %d %q", code, h.Get("Content-Type"))
	}
}

func TestUTF8NamesAndEscaping(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) { o.EnableUTF8Names = true })
	g.expect("PUT", "/metrics/job/j/U__my_2e_label/v", "{\"my.metric\",\"my.label\"=\"x\"} 1\n", 200, "")
	code, body, _ := g.do("GET", "/metrics", nil, "Accept", "text/plain; version=0.0.4; escaping=allow-utf-8")
	if code != 200 || !strings.Contains(body, `{"my.metric",instance="",job="j","my.label"="v"} 1`) {
		t.Fatalf("utf-8 exposition: %d\n%s", code, body)
	}
	_, body, _ = g.do("GET", "/metrics", nil, "Accept", "text/plain; version=0.0.4")
	if !strings.Contains(body, `my_metric{instance="",job="j",my_label="v"} 1`) {
		t.Fatalf("escaped exposition:\n%s", body)
	}
	legacy := startGateway(t, nil)
	legacy.expect("PUT", "/metrics/job/j/U__my_2e_label/v", "a 1\n", 200, "")
	legacy.expect("PUT", "/metrics/job/j", "{\"my.metric\"} 1\n", 400, "")
}

func TestRoutePrefixAdminAndLifecycle(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) {
		o.RoutePrefix = "/pg"
		o.EnableAdminAPI = true
		o.EnableLifecycle = true
	})
	g.expect("PUT", "/pg/metrics/job/j", "a 1\n", 200, "")
	g.expect("PUT", "/metrics/job/j", "a 1\n", 404, "")
	g.expect("GET", "/pg/-/healthy", "", 200, "OK")
	g.expect("GET", "/pg/-/ready", "", 200, "OK")
	g.expect("GET", "/pg/", "", 200, "Pushgateway")
	g.expect("GET", "/pg/api/v1/status", "", 200, `"status":"success"`)
	g.expect("PUT", "/pg/api/v1/admin/wipe", "", 202, "")
	if got := g.pushed("/pg/metrics"); got != "" {
		t.Fatalf("wipe left:\n%s", got)
	}
	g.expect("GET", "/-/quit", "", 405, "Only POST or PUT requests allowed.")
	g.expect("PUT", "/pg/-/quit", "", 200, "Requesting termination... Goodbye!")
	select {
	case <-g.quit:
	default:
		t.Fatal("quit channel not closed")
	}

	off := startGateway(t, nil)
	off.expect("PUT", "/-/quit", "", 403, "Lifecycle API is not enabled.")
	off.expect("PUT", "/api/v1/admin/wipe", "", 404, "")
}

func TestUncheckedPushesAnswer202AndInconsistentScrapeFails(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) { o.DisableConsistencyCheck = true })
	g.expect("PUT", "/metrics/job/a", "# TYPE m counter\nm 1\n", 202, "")
	g.expect("PUT", "/metrics/job/b", "# TYPE m gauge\nm 1\n", 202, "")
	g.expect("GET", "/metrics", "", 500, "An error has occurred while serving metrics")
}

func TestAPIMetricsJSON(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) {
		o.Now = func() time.Time { return time.Unix(1700000000, 5).UTC() }
	})
	g.expect("PUT", "/metrics/job/j/instance/i", "# HELP s a summary\n# TYPE s summary\ns{quantile=\"0.5\"} 2\ns_sum 10\ns_count 4\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 3\nh_sum 5\nh_count 3\nc 1e6\n", 200, "")
	_, body, h := g.do("GET", "/api/v1/metrics", nil)
	if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("headers: %v", h)
	}
	var resp struct {
		Status string           `json:"status"`
		Data   []map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Status != "success" || len(resp.Data) != 1 {
		t.Fatalf("%v %s", err, body)
	}
	grp := resp.Data[0]
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	for key, want := range map[string]string{
		"labels":               `{"instance":"i","job":"j"}`,
		"last_push_successful": `true`,
		"s":                    `{"help":"a summary","metrics":[{"count":"4","labels":{"instance":"i","job":"j"},"quantiles":{"0.5":"2"},"sum":"10"}],"time_stamp":"2023-11-14T22:13:20.000000005Z","type":"SUMMARY"}`,
		"h":                    `{"metrics":[{"buckets":{"+Inf":"3","1":"1"},"count":"3","labels":{"instance":"i","job":"j"},"sum":"5"}],"time_stamp":"2023-11-14T22:13:20.000000005Z","type":"HISTOGRAM"}`,
		"c":                    `{"metrics":[{"labels":{"instance":"i","job":"j"},"value":"1e+06"}],"time_stamp":"2023-11-14T22:13:20.000000005Z","type":"UNTYPED"}`,
	} {
		if got := js(grp[key]); got != want {
			t.Errorf("%s:\n got %s\nwant %s", key, got, want)
		}
	}
}

// TestNativeHistogramBucketsInAPI checks upstream 1.11's rendering of
// native histogram buckets (Debian's 1.5.1 predates it, so this is not a
// differential test).
func TestNativeHistogramBucketsInAPI(t *testing.T) {
	g := startGateway(t, nil)
	mf := &dto.MetricFamily{Name: proto.String("nh"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Histogram: &dto.Histogram{
		SampleCount: proto.Uint64(6), SampleSum: proto.Float64(1.5), Schema: proto.Int32(0),
		ZeroThreshold: proto.Float64(0.001), ZeroCount: proto.Uint64(1),
		PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(2)}},
		PositiveDelta: []int64{2, -1},
		NegativeSpan:  []*dto.BucketSpan{{Offset: proto.Int32(1), Length: proto.Uint32(1)}},
		NegativeDelta: []int64{2},
	}}}}
	var pb bytes.Buffer
	protodelim.MarshalTo(&pb, mf)
	g.expect("PUT", "/metrics/job/nh", pb.String(), 200, "", "Content-Type", `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`)
	_, body, _ := g.do("GET", "/api/v1/metrics", nil)
	want := `"buckets":[[1,"-2","-1","2"],[3,"-0.001","0.001","1"],[0,"0.5","1","2"],[0,"1","2","1"]],"count":"6"`
	if !strings.Contains(body, want) {
		t.Fatalf("native buckets: want %s in\n%s", want, body)
	}
}

func TestClusterAPIAndPprof(t *testing.T) {
	g := startGateway(t, nil)
	_, body, _ := g.do("GET", "/api/v1/cluster", nil)
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Self    string           `json:"self"`
			Leader  string           `json:"leader"`
			Raft    map[string]any   `json:"raft"`
			Members []map[string]any `json:"members"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	d := resp.Data
	if resp.Status != "success" || d.Self != "n1" || d.Leader != "n1" || d.Raft["state"] != "Leader" || len(d.Members) != 1 {
		t.Fatalf("cluster status: %s", body)
	}
	for _, k := range []string{"term", "last_index", "commit_index", "applied_index"} {
		if _, ok := d.Raft[k]; !ok {
			t.Fatalf("raft.%s missing: %s", k, body)
		}
	}
	m := d.Members[0]
	for k, want := range map[string]any{"name": "n1", "status": "alive", "suffrage": "voter", "clock_offset_seconds": 0.0} {
		if m[k] != want {
			t.Fatalf("member %s = %v, want %v: %s", k, m[k], want, body)
		}
	}
	for _, k := range []string{"api_url", "gossip_address", "raft_address"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("member field %s missing: %s", k, body)
		}
	}
	g.expect("GET", "/debug/pprof/", "", 200, "goroutine")
	// The execution trace, beyond upstream: its header names the format.
	g.expect("GET", "/debug/pprof/trace?seconds=0.1", "", 200, " trace\x00")
	g.expect("DELETE", "/api/v1/admin/cluster/members/n2", "", 404, "")
	admin := startGateway(t, func(o *httpapi.Options) { o.EnableAdminAPI = true })
	admin.expect("DELETE", "/api/v1/admin/cluster/members/nobody", "", 400, `no server \"nobody\" in the raft configuration`)
}

func TestBodyLimits(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) { o.MaxBodyBytes = 4096 })
	g.expect("PUT", "/metrics/job/keep", "keep 1\n", 200, "")
	before := g.pushed("/metrics")

	g.expect("PUT", "/metrics/job/big", strings.Repeat("a 1\n", 1100), 413, "exceeds --push.max-body-bytes=4096")
	// A decompression bomb: a few hundred bytes that inflate far past the limit.
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	io.WriteString(zw, "# TYPE a gauge\n")
	io.WriteString(zw, strings.Repeat("# "+strings.Repeat("x", 1000)+"\n", 1000))
	zw.Close()
	if bomb.Len() > 4096 {
		t.Fatalf("bomb of %d bytes is not small", bomb.Len())
	}
	g.expect("PUT", "/metrics/job/bomb", bomb.String(), 413, "exceeds --push.max-body-bytes", "Content-Encoding", "gzip")
	// A delimited protobuf message claiming 4 GiB.
	g.expect("PUT", "/metrics/job/claim", "\xff\xff\xff\xff\x0f", 400, "", "Content-Type", `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`)
	// Exactly at the limit is fine.
	body := "a 1\n# " + strings.Repeat("x", 4096-7) + "\n"
	g.expect("PUT", "/metrics/job/exact", body, 200, "")
	g.expect("DELETE", "/metrics/job/exact", "", 202, "")
	if after := g.pushed("/metrics"); after != before {
		t.Fatalf("rejected pushes changed the state:\n%s\nvs\n%s", after, before)
	}
}

func TestAcknowledgedWritesCarryTheirRaftIndex(t *testing.T) {
	g := startGateway(t, func(o *httpapi.Options) { o.EnableAdminAPI = true })
	last := uint64(0)
	for _, req := range [][2]string{{"PUT", "/metrics/job/a"}, {"POST", "/metrics/job/a"}, {"DELETE", "/metrics/job/a"}, {"PUT", "/api/v1/admin/wipe"}} {
		_, _, h := g.do(req[0], req[1], strings.NewReader("m 1\n"))
		idx, err := strconv.ParseUint(h.Get(httpapi.IndexHeader), 10, 64)
		if err != nil || idx <= last {
			t.Fatalf("%s %s: index header %q after %d", req[0], req[1], h.Get(httpapi.IndexHeader), last)
		}
		last = idx
	}
}

// TestDefaultPushLimits: with no limit options set, a huge label value or
// too many labels are refused with 400 and change nothing, while pushes
// of a realistic size pass.
func TestDefaultPushLimits(t *testing.T) {
	g := startGateway(t, nil)
	g.expect("PUT", "/metrics/job/keep", "keep{v=\""+strings.Repeat("v", httpapi.DefaultMaxLabelValueBytes)+"\"} 1\n", 200, "")
	before := g.pushed("/metrics")
	g.expect("PUT", "/metrics/job/huge", "m{v=\""+strings.Repeat("v", httpapi.DefaultMaxLabelValueBytes+1)+"\"} 1\n", 400, "--push.max-label-value-bytes=65536")
	var labels []string
	for i := range httpapi.DefaultMaxLabelsPerSeries {
		labels = append(labels, "l"+strconv.Itoa(i)+`="x"`)
	}
	g.expect("PUT", "/metrics/job/wide", "m{"+strings.Join(labels, ",")+"} 1\n", 400, "--push.max-labels-per-series=128")
	var many strings.Builder
	for i := range httpapi.DefaultMaxSeriesPerPush + 1 {
		fmt.Fprintf(&many, "m{i=\"%d\"} 1\n", i)
	}
	g.expect("PUT", "/metrics/job/many", many.String(), 400, "--push.max-series-per-push=100000")
	if after := g.pushed("/metrics"); after != before {
		t.Fatal("rejected pushes changed the state")
	}
}
