package test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// requestWith makes one request with a body and headers and returns the answer.
func requestWith(t *testing.T, method, url string, body []byte, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func pbFamily(t *testing.T, mfs ...*dto.MetricFamily) []byte {
	t.Helper()
	b, err := testutil.Delimited(mfs...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scrapeFormats are the formats a scraper may ask for.
var scrapeFormats = []string{
	"text/plain;version=0.0.4",
	"text/plain;version=0.0.4;escaping=underscores",
	"text/plain;version=1.0.0;escaping=allow-utf-8",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
}

// assertValidExposition checks that a member serves /metrics in every
// format, that it parses, and that it holds the node's own metrics and
// the given pushed family.
func assertValidExposition(t *testing.T, m *member, family string) {
	t.Helper()
	for _, accept := range scrapeFormats {
		code, body := requestWith(t, "GET", m.url()+"/metrics", nil, "Accept", accept)
		if code != 200 {
			t.Fatalf("%s /metrics (%s): %d %q", m.name, accept, code, body)
		}
		names, err := testutil.ParseExposition(accept, []byte(body))
		if err != nil {
			t.Fatalf("%s /metrics (%s) does not parse: %v", m.name, accept, err)
		}
		if !names["go_goroutines"] || !names[family] {
			t.Fatalf("%s /metrics (%s) lacks go_goroutines or %s", m.name, accept, family)
		}
	}
}

// TestPoisonRequestsOnAClusterOfProcesses sends the requests that once
// crashed every node, poisoned the log or blanked /metrics to the leader
// and to a follower of three real processes (UTF-8 names and expiry on,
// as in the reports): each gets 400 on both, every node stays up, and
// after each node restarted once all serve identical, valid /metrics.
func TestPoisonRequestsOnAClusterOfProcesses(t *testing.T) {
	ms := []*member{newMember(t, "p1"), newMember(t, "p2"), newMember(t, "p3")}
	for _, m := range ms {
		m.extra = []string{"--push.enable-utf8-names", "--push.expire-after=1h"}
	}
	for _, m := range ms {
		m.start(3, ms[0])
	}
	leader := byName(ms, waitReady(t, ms...))
	var follower *member
	for _, m := range ms {
		if m != leader {
			follower = m
			break
		}
	}
	leader.push("/metrics/job/keep", "kept 1\n")

	gauge := func(name string, typ dto.MetricType) *dto.MetricFamily {
		return &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}}}}
	}
	const protobuf = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
	var huge bytes.Buffer
	zw := gzip.NewWriter(&huge)
	for i := range 400_000 {
		fmt.Fprintf(zw, "m{i=\"%d\"} 1\n", i)
	}
	_ = zw.Close()

	cases := []struct {
		what, method, path string
		body               []byte
		header             []string
		want               string
	}{
		{"escaped reserved grouping label", "PUT", "/metrics/job/j/U___5f__5f_foo/bar", []byte("a 1\n"), nil, "improper label name"},
		{"snapshot with empty job and reserved label", "PUT", "/api/v1/admin/restore",
			testutil.RawSnapshot(map[string]string{"job": "", "__bad": "x"}, gauge("g", dto.MetricType_GAUGE)), nil, "not a valid group"},
		{"family without a name", "PUT", "/metrics/job/j", pbFamily(t, gauge("", dto.MetricType_GAUGE)), []string{"Content-Type", protobuf}, "invalid metric name"},
		{"family of unknown type", "PUT", "/metrics/job/j", pbFamily(t, gauge("a", dto.MetricType(99))), []string{"Content-Type", protobuf}, "cannot express"},
		{"snapshot of a gauge holding a counter", "PUT", "/api/v1/admin/restore",
			testutil.RawSnapshot(map[string]string{"job": "j"}, &dto.MetricFamily{Name: proto.String("g"), Type: dto.MetricType_GAUGE.Enum(),
				Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(1)}}}}), nil, "not a valid group"},
		{"invalid UTF-8 grouping value", "PUT", "/metrics/job/j1/inst/%C3%28", []byte("a 1\n"), nil, "not valid UTF-8"},
		{"400,000 series in a gzip body", "PUT", "/metrics/job/j", huge.Bytes(), []string{"Content-Encoding", "gzip"}, "--push.max-series-per-push"},
	}
	for _, tc := range cases {
		for _, m := range []*member{leader, follower} {
			code, body := requestWith(t, tc.method, m.url()+tc.path, tc.body, tc.header...)
			if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Errorf("%s via %s: %d %q, want 400 containing %q", tc.what, m.name, code, body, tc.want)
			}
		}
	}
	for _, m := range ms {
		if !m.running() {
			t.Fatalf("%s died:\n%s", m.name, m.out)
		}
	}
	before := assertSameState(t, ms...)
	if strings.Contains(before, `"j"`) || strings.Contains(before, `"j1"`) || !strings.Contains(before, `"keep"`) {
		t.Fatalf("refused requests changed the state: %s", before)
	}

	// Every node restarts once; all come back with the same valid state.
	for _, m := range ms {
		m.stop()
		m.start(3, ms[0])
		waitReady(t, ms...)
	}
	if after := assertSameState(t, ms...); after != before {
		t.Fatalf("state after restarts:\n%s\nwant\n%s", after, before)
	}
	for _, m := range ms {
		assertValidExposition(t, m, "kept")
	}
}
