package test

// Differential tests: the real upstream Pushgateway (Debian's 1.5.1) and our
// binary receive the same request sequences and must answer with the same
// status codes and bodies and end up in the same state, as seen through
// GET /metrics (pushed families only) and GET /api/v1/metrics.
//
// What is normalised away: push timestamps (only zero / non-zero is
// compared), the order of /api/v1/metrics groups, and the details of
// consistency errors (their metrics are printed in the protobuf library's
// text format, their order follows Go map order).
//
// Left out because 1.5.1 and 1.11 (the version we replace) differ, or
// because upstream is not deterministic:
//   - unclean paths ("/metrics/job//a/b", "..") are redirected by Go's
//     ServeMux: 301 in Debian's 1.5.1 build, 307 with the Go 1.26 that
//     builds 1.11 (and us);
//   - an invalid base64 job ("/metrics/job@base64/!!!") hangs that route of
//     1.5.1 forever (fixed in 1.7); it is never sent;
//   - Content-Encoding "GZIP" and "snappy" (1.9+): TestUpstream111ContentEncodings;
//   - the wording of protobuf body parse errors (pbutil vs protodelim);
//   - different HELP strings for one name in several groups: upstream
//     exposes the one of whichever group it meets first in map order;
//   - label or metric names invalid in the legacy scheme inside protobuf
//     bodies, native histograms, UTF-8 names (newer client_golang/common);
//   - the Content-Type of GET /metrics (newer client_golang adds
//     "escaping=underscores").
//
// Left out because we differ on purpose (README, "Where we differ" and
// "Bad input"; httpapi/poison_test.go checks ours): pushes upstream stores
// but cannot expose validly, such as a histogram under a grouping label
// "le" (its buckets then carry "le" twice).

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

const (
	consistencyPrefix = "pushed metrics are invalid or inconsistent with existing metrics: "
	protoContentType  = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)

// bodyCheck says how the response bodies of the two servers are compared.
type bodyCheck int

const (
	bodyIgnore     bodyCheck = iota // status code only
	bodyExact                       // byte for byte
	bodyPrefix                      // both start with consistencyPrefix and report as many errors (the details depend on versions and map order)
	bodyPrefixOnly                  // both start with consistencyPrefix (type clashes: even the number of errors depends on map order upstream)
)

// step is one request sent to both servers.
type step struct {
	name     string
	method   string
	path     string
	body     []byte
	hdr      map[string]string
	want     int       // the status upstream must answer (guards the test itself)
	check    bodyCheck // how to compare the response bodies
	wantBody string    // with bodyExact: upstream's body must be exactly this, if set
	// async: upstream applies the request after answering (DELETE, wipe),
	// so the state comparison waits for both to converge.
	async bool
	// hasStrs / hasNotStrs: substrings that must (not) occur in
	// upstream's normalised state after the step (guards the test itself).
	hasStrs, hasNotStrs []string
}

// differ sends requests to both servers and compares the outcome.
type differ struct {
	up, our *proc
	client  *http.Client
}

func newDiffer(up, our *proc) *differ {
	return &differ{up: up, our: our, client: newClient()}
}

func newClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		// Redirects are answers to compare, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type response struct {
	status int
	body   string
}

func send(c *http.Client, base string, s step) (response, error) {
	var body io.Reader
	if s.body != nil {
		body = bytes.NewReader(s.body)
	}
	req, err := http.NewRequest(s.method, base+s.path, body)
	if err != nil {
		return response{}, err
	}
	for k, v := range s.hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, body: string(b)}, nil
}

// run sends the steps in order and compares after each one.
func (d *differ) run(t *testing.T, steps ...step) {
	t.Helper()
	for i, s := range steps {
		label := fmt.Sprintf("step %d %q (%s %s)", i+1, s.name, s.method, s.path)
		d.do(t, label, s)
	}
}

func (d *differ) do(t *testing.T, label string, s step) {
	t.Helper()
	up, err := send(d.client, d.up.url, s)
	if err != nil {
		t.Fatalf("%s: upstream: %v", label, err)
	}
	our, err := send(d.client, d.our.url, s)
	if err != nil {
		t.Fatalf("%s: ours: %v", label, err)
	}
	if s.want != 0 && up.status != s.want {
		t.Errorf("%s: upstream answered %d %q, the test expects %d", label, up.status, up.body, s.want)
	}
	if up.status != our.status {
		t.Errorf("%s: status differs: upstream %d %q, ours %d %q", label, up.status, up.body, our.status, our.body)
	}
	switch s.check {
	case bodyExact:
		if s.wantBody != "" && up.body != s.wantBody {
			t.Errorf("%s: upstream body %q, the test expects %q", label, up.body, s.wantBody)
		}
		if up.body != our.body {
			t.Errorf("%s: body differs:\nupstream: %q\nours:     %q", label, up.body, our.body)
		}
	case bodyPrefix, bodyPrefixOnly:
		if !strings.HasPrefix(up.body, consistencyPrefix) {
			t.Errorf("%s: upstream body %q lacks the prefix %q", label, up.body, consistencyPrefix)
		}
		if !strings.HasPrefix(our.body, consistencyPrefix) {
			t.Errorf("%s: body differs: upstream %q, ours %q lacks the prefix %q", label, up.body, our.body, consistencyPrefix)
		} else if nu, no := errorCount(up.body), errorCount(our.body); s.check == bodyPrefix && nu != no {
			t.Errorf("%s: number of reported errors differs: upstream %d, ours %d:\nupstream: %q\nours:     %q", label, nu, no, up.body, our.body)
		}
	}
	d.compareState(t, label, s.async, s.hasStrs, s.hasNotStrs)
}

// errorCount is the number of errors a consistency failure reports: a
// single error comes bare, several as client_golang's MultiError ("N
// error(s) occurred:"). The metrics in them are printed in the protobuf
// library's text format, which differs between versions, and their order
// follows Go map order upstream; their number is stable, except for type
// clashes between groups: there upstream reports every metric whose type
// differs from that of the first group it happens to gather.
func errorCount(body string) int {
	rest := strings.TrimPrefix(body, consistencyPrefix)
	var n int
	if _, err := fmt.Sscanf(rest, "%d error(s) occurred:", &n); err == nil {
		return n
	}
	return 1
}

// compareState fetches both states and reports any difference, and checks
// that upstream's state contains every string of has and none of hasNot.
// With async, it first waits (up to a deadline) until the states agree and
// upstream's state passes those checks.
func (d *differ) compareState(t *testing.T, label string, async bool, has, hasNot []string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	var diff string
	var problems []string
	for {
		up, err := fetchState(d.client, d.up.url)
		if err != nil {
			t.Fatalf("%s: upstream state: %v", label, err)
		}
		our, err := fetchState(d.client, d.our.url)
		if err != nil {
			t.Fatalf("%s: our state: %v", label, err)
		}
		diff = up.diff(our)
		problems = problems[:0]
		all := up.String()
		for _, h := range has {
			if !strings.Contains(all, h) {
				problems = append(problems, fmt.Sprintf("upstream state lacks %q; state:\n%s", h, all))
			}
		}
		for _, h := range hasNot {
			if strings.Contains(all, h) {
				problems = append(problems, fmt.Sprintf("upstream state unexpectedly contains %q; state:\n%s", h, all))
			}
		}
		if (diff == "" && len(problems) == 0) || !async || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling interval while upstream applies its asynchronous write
	}
	if diff != "" {
		t.Errorf("%s: state differs (- upstream, + ours):\n%s", label, diff)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", label, p)
	}
}

// gwState is the normalised observable state of a gateway.
type gwState struct {
	metrics []string // exposition lines of families with job-labelled samples
	groups  []string // canonical JSON of each /api/v1/metrics group, sorted
	status  string   // /api/v1/metrics "status"
}

func (s gwState) String() string {
	return strings.Join(s.metrics, "\n") + "\n--- /api/v1/metrics status=" + s.status + "\n" + strings.Join(s.groups, "\n")
}

func (s gwState) diff(o gwState) string {
	var b strings.Builder
	if d := lineDiff(s.metrics, o.metrics); d != "" {
		b.WriteString("GET /metrics:\n" + d)
	}
	if s.status != o.status {
		fmt.Fprintf(&b, "GET /api/v1/metrics status: %q vs %q\n", s.status, o.status)
	}
	if d := lineDiff(s.groups, o.groups); d != "" {
		b.WriteString("GET /api/v1/metrics groups:\n" + d)
	}
	return b.String()
}

// lineDiff lists the lines only in a (-) and only in b (+); when both hold
// the same lines in a different order it prints both in full.
func lineDiff(a, b []string) string {
	if strings.Join(a, "\n") == strings.Join(b, "\n") {
		return ""
	}
	count := map[string]int{}
	for _, l := range a {
		count[l]++
	}
	for _, l := range b {
		count[l]--
	}
	var out strings.Builder
	for _, l := range a {
		if count[l] > 0 {
			count[l]--
			out.WriteString("- " + l + "\n")
		}
	}
	for _, l := range b {
		if count[l] < 0 {
			count[l]++
			out.WriteString("+ " + l + "\n")
		}
	}
	if out.Len() == 0 {
		out.WriteString("same lines, different order:\nupstream:\n  " + strings.Join(a, "\n  ") + "\nours:\n  " + strings.Join(b, "\n  ") + "\n")
	}
	return out.String()
}

func get(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b, nil
}

func fetchState(c *http.Client, base string) (gwState, error) {
	var s gwState
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return s, err
	}
	text, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return s, err
	}
	if resp.StatusCode == http.StatusOK {
		s.metrics = normaliseExposition(string(text))
	} else {
		// Upstream answers 500 when the stored metrics cannot be
		// gathered consistently; the error list is in map order.
		s.metrics = []string{fmt.Sprintf("<GET /metrics answered %d>", resp.StatusCode)}
	}
	js, err := get(c, base+"/api/v1/metrics")
	if err != nil {
		return s, err
	}
	s.status, s.groups, err = normaliseAPIMetrics(js)
	return s, err
}

// isPushTimeName reports whether name is one of the per-group timestamps,
// whose values are normalised to zero / non-zero.
func isPushTimeName(name string) bool {
	return name == "push_time_seconds" || name == "push_failure_time_seconds"
}

func zeroOrNot(v string) string {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return "<unparsable " + v + ">"
	}
	if f == 0 {
		return "<zero>"
	}
	return "<nonzero>"
}

// normaliseExposition keeps the families of the text exposition that have
// at least one sample with a job label (dropping the gateway's own go_*,
// process_* and pushgateway_* families) and replaces the values of
// push_time_seconds / push_failure_time_seconds by <zero> or <nonzero>.
func normaliseExposition(text string) []string {
	type family struct {
		name   string
		lines  []string
		hasJob bool
	}
	var fams []*family
	var cur *family
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			name := strings.Fields(line)[2]
			if cur == nil || cur.name != name {
				cur = &family{name: name}
				fams = append(fams, cur)
			}
			cur.lines = append(cur.lines, line)
			continue
		}
		if strings.HasPrefix(line, "#") {
			if cur != nil {
				cur.lines = append(cur.lines, line)
			}
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if cur == nil || !strings.HasPrefix(name, cur.name) {
			cur = &family{name: name}
			fams = append(fams, cur)
		}
		if _, ok := sampleLabels(line)["job"]; ok {
			cur.hasJob = true
		}
		if isPushTimeName(name) {
			if i := strings.LastIndexByte(line, ' '); i >= 0 {
				line = line[:i+1] + zeroOrNot(line[i+1:])
			}
		}
		cur.lines = append(cur.lines, line)
	}
	var out []string
	for _, f := range fams {
		if !f.hasJob {
			continue
		}
		if strings.HasPrefix(f.name, "go_") || strings.HasPrefix(f.name, "process_") || strings.HasPrefix(f.name, "pushgateway_") {
			continue
		}
		out = append(out, f.lines...)
	}
	return out
}

// sampleLabels parses the label set of a text-format sample line.
func sampleLabels(line string) map[string]string {
	labels := map[string]string{}
	open := strings.IndexByte(line, '{')
	if open < 0 || (strings.IndexByte(line, ' ') >= 0 && strings.IndexByte(line, ' ') < open) {
		return labels
	}
	s := line[open+1:]
	for {
		s = strings.TrimLeft(s, ", ")
		if s == "" || s[0] == '}' {
			return labels
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return labels
		}
		name := s[:eq]
		s = s[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			val.WriteByte(s[i])
		}
		labels[name] = val.String()
		if i >= len(s) {
			return labels
		}
		s = s[i+1:]
	}
}

// ourGroupFields are the /api/v1/metrics group fields upstream does not
// have: who pushed (every group) and the expiry (groups that expire). A
// pushed family of the same name keeps its place and is compared.
var ourGroupFields = map[string]bool{"last_push_by": true, "expire_after": true, "expires_at": true}

// normaliseAPIMetrics turns a /api/v1/metrics answer into its status and
// the canonical JSON of each group (sorted, as upstream's order is random),
// without time_stamp fields and our own group fields, and with the push time values as <zero> or
// <nonzero>.
func normaliseAPIMetrics(js []byte) (string, []string, error) {
	var doc struct {
		Status string           `json:"status"`
		Data   []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return "", nil, fmt.Errorf("parse /api/v1/metrics %q: %v", js, err)
	}
	groups := make([]string, 0, len(doc.Data))
	for _, g := range doc.Data {
		for name, v := range g {
			fam, ok := v.(map[string]any)
			if _, isFamily := fam["metrics"]; !isFamily && ourGroupFields[name] {
				delete(g, name) // ours beyond upstream (README "Where we differ")
				continue
			}
			if !ok || name == "labels" {
				continue
			}
			delete(fam, "time_stamp")
			if !isPushTimeName(name) {
				continue
			}
			ms, _ := fam["metrics"].([]any)
			for _, m := range ms {
				if mm, ok := m.(map[string]any); ok {
					if val, ok := mm["value"].(string); ok {
						mm["value"] = zeroOrNot(val)
					}
				}
			}
		}
		b, err := json.Marshal(g) // map keys come out sorted
		if err != nil {
			return "", nil, err
		}
		groups = append(groups, string(b))
	}
	sort.Strings(groups)
	return doc.Status, groups, nil
}

// Request builders. Bodies are compared exactly unless a step says
// otherwise: success bodies are empty and most error texts deterministic.

func req(method, name, path, body string, want int) step {
	s := step{name: name, method: method, path: path, want: want, check: bodyExact}
	if body != "" {
		s.body = []byte(body)
	}
	return s
}

func put(name, path, body string, want int) step {
	return req(http.MethodPut, name, path, body, want)
}

func post(name, path, body string, want int) step {
	return req(http.MethodPost, name, path, body, want)
}

func del(name, path string, want int) step {
	s := req(http.MethodDelete, name, path, "", want)
	s.async = true // upstream deletes after answering 202
	return s
}

func (s step) withBody(want string) step  { s.check, s.wantBody = bodyExact, want; return s }
func (s step) inconsistent() step         { s.check = bodyPrefix; return s }
func (s step) typeClash() step            { s.check = bodyPrefixOnly; return s }
func (s step) statusOnly() step           { s.check = bodyIgnore; return s }
func (s step) has(subs ...string) step    { s.hasStrs = append(s.hasStrs, subs...); return s }
func (s step) hasNot(subs ...string) step { s.hasNotStrs = append(s.hasNotStrs, subs...); return s }
func (s step) rawBody(b []byte) step      { s.body = b; return s }
func (s step) proto() step                { return s.header("Content-Type", protoContentType) }

func (s step) header(k, v string) step {
	h := map[string]string{k: v}
	for hk, hv := range s.hdr {
		if hk != k {
			h[hk] = hv
		}
	}
	s.hdr = h
	return s
}

// Body builders.

// b64 encodes s the way the Pushgateway documents for @base64 path parts.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func gz(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// family builds a metric family; an empty help leaves HELP unset.
func family(name, help string, typ dto.MetricType, ms ...*dto.Metric) *dto.MetricFamily {
	f := &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum(), Metric: ms}
	if help != "" {
		f.Help = proto.String(help)
	}
	return f
}

func labelPairs(kv []string) []*dto.LabelPair {
	var out []*dto.LabelPair
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return out
}

func gaugeM(v float64, kv ...string) *dto.Metric {
	return &dto.Metric{Label: labelPairs(kv), Gauge: &dto.Gauge{Value: proto.Float64(v)}}
}

func counterM(v float64, kv ...string) *dto.Metric {
	return &dto.Metric{Label: labelPairs(kv), Counter: &dto.Counter{Value: proto.Float64(v)}}
}

func untypedM(v float64, kv ...string) *dto.Metric {
	return &dto.Metric{Label: labelPairs(kv), Untyped: &dto.Untyped{Value: proto.Float64(v)}}
}

func summaryM(count uint64, sum float64, quantiles map[float64]float64, kv ...string) *dto.Metric {
	s := &dto.Summary{SampleCount: proto.Uint64(count), SampleSum: proto.Float64(sum)}
	qs := make([]float64, 0, len(quantiles))
	for q := range quantiles {
		qs = append(qs, q)
	}
	sort.Float64s(qs)
	for _, q := range qs {
		s.Quantile = append(s.Quantile, &dto.Quantile{Quantile: proto.Float64(q), Value: proto.Float64(quantiles[q])})
	}
	return &dto.Metric{Label: labelPairs(kv), Summary: s}
}

// histogramM builds a classic histogram from (upper bound, cumulative count)
// pairs.
func histogramM(count uint64, sum float64, buckets []float64, kv ...string) *dto.Metric {
	h := &dto.Histogram{SampleCount: proto.Uint64(count), SampleSum: proto.Float64(sum)}
	for i := 0; i+1 < len(buckets); i += 2 {
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(buckets[i]), CumulativeCount: proto.Uint64(uint64(buckets[i+1]))})
	}
	return &dto.Metric{Label: labelPairs(kv), Histogram: h}
}

// delimited writes the families as a length-delimited protobuf body.
func delimited(fams ...*dto.MetricFamily) string {
	var b bytes.Buffer
	for _, f := range fams {
		if _, err := protodelim.MarshalTo(&b, f); err != nil {
			panic(err)
		}
	}
	return b.String()
}

const allTypesText = `# HELP c_total A counter.
# TYPE c_total counter
c_total{k="v"} 1.5
c_total{k="w"} 0
# HELP g A gauge with \\ backslash and \n newline.
# TYPE g gauge
g -2
g{k="a\"q\\z\nn"} 1e-09
g{k="big"} 1.23456789012e+11
g{k="inf"} +Inf
g{k="ninf"} -Inf
g{k="nan"} NaN
# HELP u An untyped metric.
# TYPE u untyped
u 42
# HELP s A summary.
# TYPE s summary
s{quantile="0.5"} 1
s{quantile="0.99"} 2
s_sum 10
s_count 5
s{k="noq",quantile="0.5"} 0
s_sum{k="noq"} 0
s_count{k="noq"} 0
# HELP h A histogram.
# TYPE h histogram
h_bucket{le="0.1"} 1
h_bucket{le="1"} 3
h_bucket{le="+Inf"} 4
h_sum 2.5
h_count 4
h_bucket{k="noinf",le="1"} 2
h_sum{k="noinf"} 1
h_count{k="noinf"} 3
# HELP onlyhelp HELP but no TYPE line.
onlyhelp 7
`

func TestUpstreamDiff(t *testing.T) {
	requireUpstream(t)
	scenarios := []struct {
		name  string
		flags []string
		steps []step
	}{
		{name: "good_pushes", steps: []step{
			put("PUT job only", "/metrics/job/j1", "m1 1\n", 200).
				has(`m1{instance="",job="j1"} 1`, `push_time_seconds{instance="",job="j1"} <nonzero>`, `push_failure_time_seconds{instance="",job="j1"} <zero>`),
			post("POST job and instance", "/metrics/job/j1/instance/i1", "m1 2\n", 200).has(`m1{instance="i1",job="j1"} 2`),
			put("PUT extra grouping labels", "/metrics/job/j/a/b/c/d", "m1 3\n", 200).has(`m1{a="b",c="d",instance="",job="j"} 3`),
			put("PUT with text Content-Type", "/metrics/job/ct", "# TYPE t gauge\nt 1\n", 200).header("Content-Type", "text/plain; version=0.0.4"),
			post("POST a", "/metrics/job/merge", "# TYPE a gauge\na 1\n", 200),
			post("POST b keeps a", "/metrics/job/merge", "# TYPE b gauge\nb 2\n", 200).
				has(`a{instance="",job="merge"} 1`, `b{instance="",job="merge"} 2`),
			post("POST a again replaces a only", "/metrics/job/merge", "# TYPE a gauge\na{x=\"1\"} 3\n", 200).
				has(`a{instance="",job="merge",x="1"} 3`, `b{instance="",job="merge"} 2`).hasNot(`a{instance="",job="merge"} 1`),
			put("PUT replaces the group", "/metrics/job/merge", "# TYPE c counter\nc 5\n", 200).
				has(`c{instance="",job="merge"} 5`).hasNot(`b{instance="",job="merge"}`, `a{instance="",job="merge",x="1"}`),
			put("PUT empty body", "/metrics/job/merge", "", 200).
				has(`push_time_seconds{instance="",job="merge"} <nonzero>`).hasNot(`c{instance="",job="merge"}`),
			post("POST empty body", "/metrics/job/j1", "", 200).has(`m1{instance="",job="j1"} 1`),
			post("POST several samples of one name", "/metrics/job/multi", "# TYPE x counter\nx{k=\"1\"} 1\nx{k=\"2\"} 2\n", 200),
			del("DELETE group", "/metrics/job/merge", 202).hasNot(`job="merge"`),
			del("DELETE non-existing group", "/metrics/job/nope", 202),
			del("DELETE job and instance group", "/metrics/job/j1/instance/i1", 202).
				has(`m1{instance="",job="j1"} 1`).hasNot(`m1{instance="i1",job="j1"}`),
			del("DELETE with extra grouping labels", "/metrics/job/j/a/b/c/d", 202).hasNot(`job="j"`),
			del("DELETE with a subset of the grouping labels", "/metrics/job/multi/k/1", 202).has(`x{instance="",job="multi",k="1"} 1`),
		}},
		{name: "label_overriding", steps: []step{
			put("body job and instance overridden", "/metrics/job/j/instance/i", "m{job=\"other\",instance=\"x\",foo=\"bar\"} 1\n", 200).
				has(`m{foo="bar",instance="i",job="j"} 1`),
			put("grouping labels added", "/metrics/job/j2/a/b", "m{c=\"d\"} 1\n", 200).has(`m{a="b",c="d",instance="",job="j2"} 1`),
			put("grouping label overrides body label", "/metrics/job/j3/a/b", "m{a=\"z\"} 1\n", 200).has(`m{a="b",instance="",job="j3"} 1`),
			put("body instance kept when not grouped by", "/metrics/job/j4", "m{instance=\"x\"} 1\n", 200).has(`m{instance="x",job="j4"} 1`),
			put("empty instance in the URL", "/metrics/job/j5/instance/", "m{instance=\"x\"} 1\n", 200),
			put("job label only in body", "/metrics/job/j6", "m{job=\"\"} 1\n", 200),
			put("overriding makes duplicates", "/metrics/job/j7/a/b", "m{a=\"1\"} 1\nm{a=\"2\"} 2\n", 400).inconsistent(),
			put("summary labels overridden", "/metrics/job/j8/instance/i",
				"# TYPE s summary\ns{job=\"x\",quantile=\"0.5\"} 1\ns_sum{job=\"x\"} 2\ns_count{job=\"x\"} 3\n", 200),
		}},
		{name: "types", steps: []step{
			put("all types with HELP", "/metrics/job/types/instance/i1", allTypesText, 200).
				has(`# HELP c_total A counter.`, `# TYPE h histogram`, `h_bucket{instance="i1",job="types",k="noinf",le="+Inf"} 3`),
			post("same families in a second group", "/metrics/job/types/instance/i2", allTypesText, 200),
			put("TYPE without samples", "/metrics/job/empty", "# HELP e Nothing.\n# TYPE e gauge\n", 200),
			// An empty HELP line leaves the help unset in the text parser.
			put("empty HELP line", "/metrics/job/emptyhelp", "# HELP eh \n# TYPE eh gauge\neh 1\n", 200).hasNot("# HELP eh"),
			put("comments and blank lines", "/metrics/job/comments", "# a comment\n\n# HELP z Zed.\n# TYPE z gauge\n\nz 1\n", 200),
			del("DELETE one group", "/metrics/job/types/instance/i1", 202),
			// Series of one family from different groups are sorted by
			// their label values position by position, whatever the
			// label names.
			put("sort 1", "/metrics/job/s1/a/z", "# TYPE srt gauge\nsrt 1\n", 200),
			put("sort 2", "/metrics/job/s2/b/a", "# TYPE srt gauge\nsrt 2\n", 200),
			put("sort 3", "/metrics/job/s0", "# TYPE srt gauge\nsrt{c=\"m\"} 3\n", 200),
			put("sort 4", "/metrics/job/s3", "# TYPE srt gauge\nsrt 4\n", 200),
		}},
		{name: "consistency", steps: []step{
			put("counter m in group a", "/metrics/job/a", "# TYPE m counter\nm 1\n", 200),
			put("gauge m in new group b", "/metrics/job/b", "# TYPE m gauge\nm 2\n", 400).typeClash().
				has(`push_failure_time_seconds{instance="",job="b"} <nonzero>`, `push_time_seconds{instance="",job="b"} <zero>`,
					`"labels":{"job":"b"},"last_push_successful":false`).hasNot(`m{instance="",job="b"}`),
			put("n in group d", "/metrics/job/d", "# TYPE n gauge\nn 1\n", 200),
			put("type clash in existing group d", "/metrics/job/d", "# TYPE m gauge\nm 3\n", 400).typeClash().
				has(`n{instance="",job="d"} 1`, `push_time_seconds{instance="",job="d"} <nonzero>`,
					`push_failure_time_seconds{instance="",job="d"} <nonzero>`, `"labels":{"job":"d"},"last_push_successful":false`),
			post("POST type clash in existing group d", "/metrics/job/d", "# TYPE m gauge\nm 3\n", 400).typeClash(),
			post("later success", "/metrics/job/d", "# TYPE n gauge\nn 2\n", 200).
				has(`"labels":{"job":"d"},"last_push_successful":true`, `n{instance="",job="d"} 2`),
			put("series with instance label in group c", "/metrics/job/c", "s{instance=\"x\"} 1\n", 200),
			put("colliding series in group c/x", "/metrics/job/c/instance/x", "s 2\n", 400).inconsistent().
				has(`"labels":{"instance":"x","job":"c"},"last_push_successful":false`),
			put("duplicate series in one protobuf body", "/metrics/job/dup",
				delimited(family("dupm", "Dup.", dto.MetricType_GAUGE, gaugeM(1, "k", "v"), gaugeM(2, "k", "v"))), 400).proto().inconsistent(),
			put("protobuf metric of the wrong type", "/metrics/job/wrongtype",
				delimited(family("wt", "Wrong type.", dto.MetricType_GAUGE, counterM(1))), 400).proto().inconsistent(),
			put("duplicate series in one text body", "/metrics/job/duptext", "dt 1\ndt 2\n", 400).inconsistent(),
			put("summary type clash with existing gauge", "/metrics/job/sc", "# TYPE n summary\nn_sum 1\nn_count 1\n", 400).typeClash(),
			post("success after failure in a group created by the failure", "/metrics/job/b", "# TYPE m counter\nm 9\n", 200).
				has(`push_failure_time_seconds{instance="",job="b"} <nonzero>`, `push_time_seconds{instance="",job="b"} <nonzero>`),
			post("POST replaces the type within the only group", "/metrics/job/own", "# TYPE own gauge\nown 1\n", 200),
			post("POST counter own", "/metrics/job/own", "# TYPE own counter\nown 2\n", 200),
			put("PUT replaces the type within the only group", "/metrics/job/own", "# TYPE own untyped\nown 3\n", 200),
			del("DELETE the failed group", "/metrics/job/d", 202),
			put("recreated group has a zero failure time", "/metrics/job/d", "# TYPE n gauge\nn 5\n", 200).
				has(`push_failure_time_seconds{instance="",job="d"} <zero>`),
			put("histogram sx in group hx", "/metrics/job/hx", "# TYPE sx histogram\nsx_bucket{le=\"+Inf\"} 1\nsx_sum 1\nsx_count 1\n", 200),
			put("gauge sx_count collides with histogram sx", "/metrics/job/hy", "# TYPE sx_count gauge\nsx_count 1\n", 400).inconsistent(),
			put("gauge sy_sum in group hz", "/metrics/job/hz", "# TYPE sy_sum gauge\nsy_sum 1\n", 200),
			put("summary sy collides with gauge sy_sum", "/metrics/job/hw", "# TYPE sy summary\nsy_sum 1\nsy_count 1\n", 400).inconsistent(),
			put("histogram and its _bucket in one protobuf body", "/metrics/job/hv", delimited(
				family("hb", "H.", dto.MetricType_HISTOGRAM, histogramM(1, 1, []float64{1, 1})),
				family("hb_bucket", "G.", dto.MetricType_GAUGE, gaugeM(1)),
			), 400).proto().inconsistent(),
			put("collides with a self-metric summary", "/metrics/job/self", "go_gc_duration_seconds_count 1\n", 400).inconsistent(),
			put("self-metric counter name, same type", "/metrics/job/self", "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\n", 200),
			put("duplicate label name in protobuf", "/metrics/job/duplabel", delimited(
				family("dl", "D.", dto.MetricType_GAUGE, gaugeM(1, "k", "1", "k", "2")),
			), 400).proto().inconsistent(),
		}},
		{name: "bad_names_and_bodies", steps: []step{
			put("invalid label name", "/metrics/job/j/in-valid/x", "m 1\n", 400).withBody("improper label name \"in-valid\"\n"),
			put("reserved label name", "/metrics/job/j/__x/y", "m 1\n", 400).withBody("improper label name \"__x\"\n"),
			put("label name starting with a digit", "/metrics/job/j/1a/y", "m 1\n", 400).withBody("improper label name \"1a\"\n"),
			put("invalid base64 label name", "/metrics/job/j/in-valid@base64/Zm9v", "m 1\n", 400).withBody("improper label name \"in-valid\"\n"),
			put("odd number of components", "/metrics/job/j/a", "m 1\n", 400).withBody("odd number of components in label string \"/a\"\n"),
			put("odd number of components, three", "/metrics/job/j/a/b/c", "m 1\n", 400),
			put("encoded slash in job", "/metrics/job/a%2Fb", "m 1\n", 400),
			put("empty job via base64", "/metrics/job@base64/=", "m 1\n", 400).withBody("job name is required\n"),
			del("DELETE empty job via base64", "/metrics/job@base64/=", 400).withBody("job name is required\n"),
			del("DELETE invalid label name", "/metrics/job/j/in-valid/x", 400).withBody("improper label name \"in-valid\"\n"),
			del("DELETE odd number of components", "/metrics/job/j/a", 400),
			put("malformed label set", "/metrics/job/j", "m{ 1\n", 400).
				withBody("text format parsing error in line 1: invalid label name for metric \"m\"\n"),
			put("malformed value", "/metrics/job/j", "m abc\n", 400),
			put("malformed metric name", "/metrics/job/j", "1m 1\n", 400),
			put("second TYPE line", "/metrics/job/j", "# TYPE m gauge\n# TYPE m counter\nm 1\n", 400),
			put("unknown type", "/metrics/job/j", "# TYPE m foo\nm 1\n", 400),
			put("malformed second line", "/metrics/job/j", "ok 1\nm{a=\"b\" 1\n", 400),
			put("duplicate label in a sample", "/metrics/job/j", "m{a=\"1\",a=\"2\"} 1\n", 400),
			put("pushed timestamp", "/metrics/job/j", "m 1 1234\n", 400).
				withBody(consistencyPrefix + "pushed metrics must not have timestamps\n").
				has(`push_failure_time_seconds{instance="",job="j"} <nonzero>`),
			put("pushed timestamp to an existing group", "/metrics/job/j", "m 1 1234\n", 400).
				withBody(consistencyPrefix + "pushed metrics must not have timestamps\n"),
			put("no group created by parse errors", "/metrics/job/k", "m{ 1\n", 400).hasNot(`job="k"`),
			req(http.MethodGet, "GET on a push path", "/metrics/job/j", "", 405).statusOnly(),
			put("unknown path", "/metrics/foo", "m 1\n", 404).statusOnly(),
			put("no job path", "/metrics/job", "m 1\n", 404),
			put("PUT on /metrics", "/metrics", "m 1\n", 405),
			put("invalid UTF-8 label value", "/metrics/job/j", "m{a=\"\xff\"} 1\n", 400),
			put("CRLF line ending", "/metrics/job/j", "m 1\r\n", 400),
			put("no final newline", "/metrics/job/j", "m 1", 400),
			put("interleaved samples", "/metrics/job/inter", "a 1\nb 1\na 2\n", 400).inconsistent(),
			put("self-metric name with another type", "/metrics/job/self", "go_goroutines 1\n", 400).inconsistent(),
		}},
		{name: "odd_but_valid", steps: []step{
			put("trailing slash", "/metrics/job/j/", "m 1\n", 200).has(`m{instance="",job="j"} 1`),
			put("percent-encoded label value", "/metrics/job/j/a/b%20c", "m 2\n", 200).has(`m{a="b c",instance="",job="j"} 2`),
			put("percent-encoded job", "/metrics/job/a%40b", "m 3\n", 200).has(`m{instance="",job="a@b"} 3`),
			put("job label in the label path is ignored", "/metrics/job/j2/job/k", "m 4\n", 200).has(`m{instance="",job="j2"} 4`),
			put("repeated label: last wins", "/metrics/job/j3/instance/a/instance/b", "m 5\n", 200).has(`m{instance="b",job="j3"} 5`),
			put("query string ignored", "/metrics/job/q?x=1", "m 6\n", 200).has(`m{instance="",job="q"} 6`),
			put("base64 job with trailing slash", "/metrics/job@base64/YS9i/", "m 7\n", 200).has(`m{instance="",job="a/b"} 7`),
			put("metric name with colon", "/metrics/job/c", "a:b 1\n", 200),
			put("push_time_seconds in the body", "/metrics/job/r", "push_time_seconds 1\n", 200).has(`push_time_seconds{instance="",job="r"} <nonzero>`),
			put("push_time_seconds as a counter in the body", "/metrics/job/r2", "# TYPE push_time_seconds counter\npush_time_seconds 1\n", 200),
			put("self-metric name with another HELP", "/metrics/job/self", "# HELP go_goroutines foo\n# TYPE go_goroutines gauge\ngo_goroutines 1\n", 200),
			put("quantile as grouping label of a summary", "/metrics/job/q/quantile/x",
				"# TYPE sq summary\nsq{quantile=\"0.5\"} 1\nsq_sum 1\nsq_count 1\n", 400).inconsistent(),
			put("empty label value in the body", "/metrics/job/ev", "m{a=\"\"} 8\n", 200),
			put("content type application/json is parsed as text", "/metrics/job/json", "# TYPE js gauge\njs 1\n", 200).header("Content-Type", "application/json"),
		}},
		{name: "failed_push_poisons_store", steps: []step{
			// A rejected push to a new group creates that group with
			// push timestamps. Here the new group {job="p",instance=""}
			// exposes the same push_time_seconds series as {job="p"}, so
			// upstream can no longer gather its store: GET /metrics
			// answers 500 and every later push to any group is
			// rejected until the group is deleted (1.11 does the same:
			// same handler and store code).
			put("group p", "/metrics/job/p", "# TYPE m gauge\nm 1\n", 200),
			put("group p with empty instance collides", "/metrics/job/p/instance@base64/=", "# TYPE m gauge\nm 1\n", 400).inconsistent().
				has(`<GET /metrics answered 500>`, `"labels":{"instance":"","job":"p"},"last_push_successful":false`),
			put("push to an unrelated group", "/metrics/job/other", "# TYPE o gauge\no 1\n", 400).inconsistent(),
			post("POST to an unrelated group", "/metrics/job/other2", "# TYPE o gauge\no 1\n", 400).inconsistent(),
			del("deleting the colliding group heals", "/metrics/job/p/instance@base64/=", 202).hasNot(`<GET /metrics answered 500>`),
			put("push to an unrelated group after healing", "/metrics/job/other", "# TYPE o gauge\no 1\n", 200),
		}},
		{name: "base64", steps: []step{
			put("job with a slash", "/metrics/job@base64/"+b64("a/b"), "m 1\n", 200).has(`m{instance="",job="a/b"} 1`),
			put("label value with slashes", "/metrics/job@base64/"+b64("a/b")+"/path@base64/"+b64("/var/tmp"), "m 2\n", 200).
				has(`m{instance="",job="a/b",path="/var/tmp"} 2`),
			put("empty label value", "/metrics/job/j/v@base64/=", "m 3\n", 200),
			put("empty instance via base64", "/metrics/job/j2/instance@base64/=", "m 4\n", 200),
			put("padding: none", "/metrics/job/pad/v@base64/Zm9vYg", "# TYPE p gauge\np 1\n", 200).has(`p{instance="",job="pad",v="foob"} 1`),
			post("padding: ==", "/metrics/job/pad/v@base64/Zm9vYg==", "# TYPE q gauge\nq 1\n", 200).has(`p{instance="",job="pad",v="foob"} 1`, `q{instance="",job="pad",v="foob"} 1`),
			post("padding: =", "/metrics/job/pad/v@base64/Zm9vYg=", "# TYPE r gauge\nr 1\n", 200).has(`r{instance="",job="pad",v="foob"} 1`),
			post("padded job", "/metrics/job@base64/am9iMQ==", "# TYPE r gauge\nr 2\n", 200).has(`r{instance="",job="job1"} 2`),
			post("plain job equals base64 job", "/metrics/job/job1", "# TYPE s gauge\ns 2\n", 200).has(`r{instance="",job="job1"} 2`),
			put("special characters", "/metrics/job/j3/v@base64/"+b64("a\"b\\c\nd é"), "m 5\n", 200),
			put("plain value that looks like base64", "/metrics/job/j4/v/Zm9v", "m 6\n", 200).has(`m{instance="",job="j4",v="Zm9v"} 6`),
			put("URL-safe alphabet", "/metrics/job/j5/v@base64/"+b64("?>?"), "m 7\n", 200).has(`m{instance="",job="j5",v="?>?"} 7`),
			put("standard alphabet rejected", "/metrics/job/j6/v@base64/Pz4+", "m 8\n", 400),
			put("invalid label base64", "/metrics/job/j6/v@base64/!!!", "m 9\n", 400),
			put("truncated label base64", "/metrics/job/j6/v@base64/Z", "m 9\n", 400),
			del("DELETE base64 group", "/metrics/job@base64/"+b64("a/b")+"/path@base64/"+b64("/var/tmp"), 202).
				hasNot(`path="/var/tmp"`).has(`m{instance="",job="a/b"} 1`),
			del("DELETE with padded base64", "/metrics/job/pad/v@base64/Zm9vYg==", 202).hasNot(`job="pad"`),
			del("DELETE invalid label base64", "/metrics/job/j6/v@base64/!!!", 400),
		}},
		{name: "protobuf", steps: []step{
			put("all types", "/metrics/job/pb/instance/i", delimited(
				family("pc_total", "A counter.", dto.MetricType_COUNTER, counterM(3, "k", "v")),
				family("pg", "A gauge.", dto.MetricType_GAUGE, gaugeM(-1), gaugeM(math.Inf(1), "k", "inf")),
				family("pu", "", dto.MetricType_UNTYPED, untypedM(4)),
				family("ps", "A summary.", dto.MetricType_SUMMARY, summaryM(5, 10, map[float64]float64{0.5: 1, 0.9: 2})),
				family("ph", "A histogram.", dto.MetricType_HISTOGRAM, histogramM(4, 2.5, []float64{0.1, 1, 1, 3, math.Inf(1), 4}), histogramM(3, 1, []float64{1, 2}, "k", "noinf")),
			), 200).proto().has(`pc_total{instance="i",job="pb",k="v"} 3`, `ph_bucket{instance="i",job="pb",k="noinf",le="+Inf"} 3`),
			post("labels overridden", "/metrics/job/pb/instance/i", delimited(
				family("pl", "Labels.", dto.MetricType_GAUGE, gaugeM(1, "job", "other", "instance", "x", "k", "v")),
			), 200).proto().has(`pl{instance="i",job="pb",k="v"} 1`),
			post("explicitly empty HELP", "/metrics/job/pb/instance/i", delimited(&dto.MetricFamily{
				Name: proto.String("pe"), Help: proto.String(""), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{gaugeM(1)},
			}), 200).proto(),
			post("same family twice in one body", "/metrics/job/pb/instance/i", delimited(
				family("twice", "Twice.", dto.MetricType_GAUGE, gaugeM(1)),
				family("twice", "Twice.", dto.MetricType_GAUGE, gaugeM(2)),
			), 200).proto(),
			post("unsorted labels", "/metrics/job/pb/instance/i", delimited(
				family("pz", "Unsorted.", dto.MetricType_GAUGE, gaugeM(1, "z", "1", "a", "2")),
			), 200).proto().has(`pz{a="2",instance="i",job="pb",z="1"} 1`),
			post("small bucket bounds", "/metrics/job/pb/instance/i", delimited(
				family("pb_small", "Small.", dto.MetricType_HISTOGRAM, histogramM(2, 0.00002, []float64{0.00001, 1, 0.5e-7, 0})),
			), 200).proto(),
			post("empty label value", "/metrics/job/pb/instance/i", delimited(
				family("pev", "Empty value.", dto.MetricType_GAUGE, gaugeM(1, "e", "")),
			), 200).proto(),
			post("family without metrics", "/metrics/job/pb/instance/i", delimited(family("nometrics", "None.", dto.MetricType_GAUGE)), 200).proto(),
			put("timestamp", "/metrics/job/pbts", delimited(&dto.MetricFamily{
				Name: proto.String("ts"), Type: dto.MetricType_GAUGE.Enum(),
				Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}, TimestampMs: proto.Int64(1234)}},
			}), 400).proto().withBody(consistencyPrefix + "pushed metrics must not have timestamps\n"),
			put("empty body", "/metrics/job/pbempty", "", 200).proto().has(`push_time_seconds{instance="",job="pbempty"} <nonzero>`),
			// The error text comes from pbutil in 1.5.1 and protodelim in 1.11.
			put("garbage", "/metrics/job/pbbad", "\x05abc", 400).proto().statusOnly(),
			put("protobuf type without encoding=delimited is parsed as text", "/metrics/job/pbtext", "# TYPE pt gauge\npt 1\n", 200).
				header("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily"),
			put("protobuf body replaces a text body", "/metrics/job/pbtext", delimited(family("pt", "Now with help.", dto.MetricType_GAUGE, gaugeM(2))), 200).proto(),
		}},
		{name: "gzip", steps: []step{
			post("gzipped text", "/metrics/job/gz", gz("# TYPE g gauge\ng 1\n"), 200).header("Content-Encoding", "gzip").has(`g{instance="",job="gz"} 1`),
			put("gzipped protobuf", "/metrics/job/gz/instance/p", gz(delimited(family("g", "", dto.MetricType_GAUGE, gaugeM(2)))), 200).
				proto().header("Content-Encoding", "gzip"),
			put("gzip header on a plain body", "/metrics/job/gz2", "# TYPE g gauge\ng 1\n", 400).header("Content-Encoding", "gzip").withBody("gzip: invalid header\n"),
			put("truncated gzip body", "/metrics/job/gz3", gz("# TYPE g gauge\ng 1\n")[:15], 400).header("Content-Encoding", "gzip").statusOnly(),
			put("identity encoding", "/metrics/job/gz4", "# TYPE g gauge\ng 4\n", 200).header("Content-Encoding", "identity"),
		}},
		{name: "admin_wipe", flags: []string{"--web.enable-admin-api"}, steps: []step{
			put("group w1", "/metrics/job/w1", "# TYPE w gauge\nw 1\n", 200),
			put("group w2", "/metrics/job/w2/instance/x", "# TYPE w gauge\nw 2\n", 200),
			put("failed push leaves a group", "/metrics/job/w3", "# TYPE w counter\nw 2\n", 400).typeClash(),
			func() step { s := req(http.MethodPut, "wipe", "/api/v1/admin/wipe", "", 202); s.async = true; return s }().
				hasNot(`job="w1"`, `job="w2"`, `job="w3"`),
			req(http.MethodPost, "POST wipe", "/api/v1/admin/wipe", "", 405).statusOnly(),
			put("push after wipe", "/metrics/job/w1", "# TYPE w counter\nw 3\n", 200),
		}},
		{name: "admin_lifecycle_disabled", steps: []step{
			req(http.MethodPut, "wipe without --web.enable-admin-api", "/api/v1/admin/wipe", "", 404),
			req(http.MethodPut, "quit without --web.enable-lifecycle", "/-/quit", "", 403).withBody("Lifecycle API is not enabled."),
			req(http.MethodPost, "POST quit without --web.enable-lifecycle", "/-/quit", "", 403).withBody("Lifecycle API is not enabled."),
			req(http.MethodGet, "GET quit", "/-/quit", "", 405).withBody("Only POST or PUT requests allowed."),
			req(http.MethodGet, "healthy", "/-/healthy", "", 200).withBody("OK"),
			req(http.MethodGet, "ready", "/-/ready", "", 200).withBody("OK"),
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			up, our := startPair(t, sc.flags...)
			newDiffer(up, our).run(t, sc.steps...)
		})
	}
	t.Run("client_golang_push", func(t *testing.T) {
		t.Parallel()
		up, our := startPair(t)
		testClientGolangPush(t, newDiffer(up, our))
	})
	t.Run("api_status", func(t *testing.T) {
		t.Parallel()
		up, our := startPair(t)
		c := newClient()
		for _, p := range []*proc{up, our} {
			checkStatusAPI(t, c, p)
		}
	})
}

// checkStatusAPI asserts the shape of GET /api/v1/status; its content
// (flags, build information) legitimately differs between the two.
func checkStatusAPI(t *testing.T, c *http.Client, p *proc) {
	t.Helper()
	resp, err := c.Get(p.url + "/api/v1/status")
	if err != nil {
		t.Fatalf("%s: GET /api/v1/status: %v", p.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: GET /api/v1/status: %s %q", p.name, resp.Status, body)
	}
	var doc struct {
		Status string                     `json:"status"`
		Data   map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%s: GET /api/v1/status: not JSON: %v: %q", p.name, err, body)
	}
	if doc.Status != "success" {
		t.Errorf("%s: GET /api/v1/status: status %q, want success", p.name, doc.Status)
	}
	for _, k := range []string{"flags", "start_time", "build_information"} {
		if _, ok := doc.Data[k]; !ok {
			t.Errorf("%s: GET /api/v1/status: data lacks %q: %s", p.name, k, body)
		}
	}
}

// testClientGolangPush drives both servers with client_golang's push
// package and compares the errors and the state after each call.
func testClientGolangPush(t *testing.T, d *differ) {
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "pc_total", Help: "Pushed counter."})
	counter.Add(3)
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pg", Help: "Pushed gauge."})
	gauge.Set(1.5)
	gaugeVec := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgv", Help: ""}, []string{"k"})
	gaugeVec.WithLabelValues("a").Set(1)
	gaugeVec.WithLabelValues("b").Set(2)
	summary := prometheus.NewSummary(prometheus.SummaryOpts{Name: "ps", Help: "Pushed summary.", Objectives: map[float64]float64{0.5: 0.05}})
	summary.Observe(1)
	summary.Observe(3)
	histogram := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ph", Help: "Pushed histogram.", Buckets: []float64{1, 2}})
	histogram.Observe(1.5)
	gauge2 := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pg2", Help: "Second gauge."})
	gauge2.Set(7)
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pc_total", Help: "Pushed counter."})
	withJob := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pj", Help: "Has a job label.", ConstLabels: prometheus.Labels{"job": "x"}})
	text := expfmt.NewFormat(expfmt.TypeTextPlain)

	calls := []struct {
		name    string
		wantErr bool
		async   bool
		call    func(url string) error
		has     []string
	}{
		{name: "Push protobuf", call: func(url string) error {
			return push.New(url, "cg").Grouping("instance", "x").Collector(counter).Collector(gauge).Collector(gaugeVec).Collector(summary).Collector(histogram).Push()
		}, has: []string{`pc_total{instance="x",job="cg"} 3`, `ph_bucket{instance="x",job="cg",le="2"} 1`}},
		{name: "Add protobuf", call: func(url string) error {
			return push.New(url, "cg").Grouping("instance", "x").Collector(gauge2).Add()
		}, has: []string{`pg2{instance="x",job="cg"} 7`, `pc_total{instance="x",job="cg"} 3`}},
		{name: "Push text", call: func(url string) error {
			return push.New(url, "cg").Grouping("instance", "x").Format(text).Collector(counter).Push()
		}, has: []string{`pc_total{instance="x",job="cg"} 3`}},
		{name: "Add text", call: func(url string) error {
			return push.New(url, "cg").Grouping("instance", "x").Format(text).Collector(gaugeVec).Add()
		}, has: []string{`pgv{instance="x",job="cg",k="b"} 2`}},
		{name: "Push text to a second group", call: func(url string) error {
			return push.New(url, "cg2").Format(text).Collector(summary).Collector(gauge).Push()
		}},
		{name: "Push type clash", wantErr: true, call: func(url string) error {
			return push.New(url, "cg3").Collector(clash).Push()
		}},
		{name: "Add type clash, text", wantErr: true, call: func(url string) error {
			return push.New(url, "cg2").Format(text).Collector(clash).Add()
		}},
		{name: "Push with a job label in the collector", wantErr: true, call: func(url string) error {
			return push.New(url, "cg4").Collector(withJob).Push()
		}},
		{name: "Delete", async: true, call: func(url string) error {
			return push.New(url, "cg").Grouping("instance", "x").Delete()
		}},
		{name: "Delete missing group", async: true, call: func(url string) error {
			return push.New(url, "nope").Delete()
		}},
	}
	for i, c := range calls {
		label := fmt.Sprintf("call %d %q", i+1, c.name)
		errUp, errOur := c.call(d.up.url), c.call(d.our.url)
		if (errUp != nil) != c.wantErr {
			t.Errorf("%s: upstream returned %v, the test expects an error: %v", label, errUp, c.wantErr)
		}
		if (errUp == nil) != (errOur == nil) {
			t.Errorf("%s: errors differ: upstream %v, ours %v", label, errUp, errOur)
		}
		d.compareState(t, label, c.async, c.has, nil)
	}
}

// TestUpstream111ContentEncodings covers request encodings that upstream
// only gained after 1.5.1 (the Debian package the differential test runs):
// since 1.9 the Content-Encoding is matched case-insensitively ("GZIP") and
// snappy (framed) bodies are accepted. It therefore runs against our binary
// only.
func TestUpstream111ContentEncodings(t *testing.T) {
	t.Parallel()
	our := startOurs(t)
	c := newClient()

	var snappyBody bytes.Buffer
	w := snappy.NewBufferedWriter(&snappyBody)
	if _, err := w.Write([]byte("# TYPE sn gauge\nsn 2\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []step{
		put("GZIP", "/metrics/job/enc", gz("# TYPE gz gauge\ngz 1\n"), 200).header("Content-Encoding", "GZIP"),
		post("snappy", "/metrics/job/enc", snappyBody.String(), 200).header("Content-Encoding", "snappy"),
	} {
		r, err := send(c, our.url, s)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if r.status != s.want {
			t.Errorf("%s: status %d %q, want %d", s.name, r.status, r.body, s.want)
		}
	}
	st, err := fetchState(c, our.url)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`gz{instance="",job="enc"} 1`, `sn{instance="",job="enc"} 2`} {
		if !strings.Contains(st.String(), want) {
			t.Errorf("state lacks %q:\n%s", want, st)
		}
	}
}
