package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

const dashboardFile = "grafana/pushgateway-cluster.json"

// prometheusSeries are names Prometheus makes itself for every target.
var prometheusSeries = map[string][]string{
	"up":                                    nil,
	"scrape_duration_seconds":               nil,
	"scrape_samples_scraped":                nil,
	"scrape_series_added":                   nil,
	"scrape_samples_post_metric_relabeling": nil,
}

// promqlFuncs are the PromQL functions and aggregations the dashboard may
// call (a typo is an error, not a metric name).
var promqlFuncs = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true, "topk": true, "bottomk": true,
	"quantile": true, "count_values": true, "group": true,
	"rate": true, "irate": true, "increase": true, "delta": true, "idelta": true, "deriv": true, "changes": true, "resets": true,
	"histogram_quantile": true, "time": true, "vector": true, "scalar": true, "abs": true, "clamp_min": true, "clamp_max": true,
	"avg_over_time": true, "max_over_time": true, "min_over_time": true, "sum_over_time": true, "count_over_time": true,
	"last_over_time": true, "absent": true, "label_replace": true, "timestamp": true,
}

// promqlKeywords are the identifiers that are neither metric nor function.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true,
}

// selector is a metric name used in an expression with the label names
// of its matchers.
type selector struct {
	metric string
	labels []string
}

// selectors finds the metric names in a PromQL expression, with the label
// names their matchers use. It is a small lexer, enough for the
// expressions of a dashboard: strings, label lists after by/without/on/
// ignoring/group_*, range and subquery brackets and Grafana variables are
// skipped; an identifier followed by "(" must be a known function.
func selectors(expr string) ([]selector, error) {
	var out []selector
	s := expr
	i := 0
	skipSpace := func() {
		for i < len(s) && unicode.IsSpace(rune(s[i])) {
			i++
		}
	}
	ident := func() string {
		start := i
		for i < len(s) && (s[i] == '_' || s[i] == ':' || unicode.IsLetter(rune(s[i])) || (i > start && unicode.IsDigit(rune(s[i])))) {
			i++
		}
		return s[start:i]
	}
	str := func() (string, error) {
		q := s[i]
		i++
		start := i
		for i < len(s) && s[i] != q {
			if s[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(s) {
			return "", fmt.Errorf("unterminated string in %q", expr)
		}
		i++
		return s[start : i-1], nil
	}
	matchers := func() ([]string, error) { // at '{'
		i++
		var names []string
		for {
			skipSpace()
			if i < len(s) && s[i] == '}' {
				i++
				return names, nil
			}
			name := ident()
			if name == "" {
				return nil, fmt.Errorf("bad matcher at %d in %q", i, expr)
			}
			names = append(names, name)
			skipSpace()
			for i < len(s) && strings.ContainsRune("=!~", rune(s[i])) {
				i++
			}
			skipSpace()
			if i >= len(s) || !strings.ContainsRune("\"'`", rune(s[i])) {
				return nil, fmt.Errorf("matcher %s without a string value in %q", name, expr)
			}
			if _, err := str(); err != nil {
				return nil, err
			}
			skipSpace()
			if i < len(s) && s[i] == ',' {
				i++
			}
		}
	}
	for i < len(s) {
		c := s[i]
		switch {
		case unicode.IsSpace(rune(c)):
			i++
		case c == '"' || c == '\'' || c == '`':
			if _, err := str(); err != nil {
				return nil, err
			}
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated [ in %q", expr)
			}
			i += end + 1
		case c == '$':
			i++
			ident()
		case unicode.IsDigit(rune(c)) || (c == '.' && i+1 < len(s) && unicode.IsDigit(rune(s[i+1]))):
			for i < len(s) && (unicode.IsDigit(rune(s[i])) || strings.ContainsRune(".eE", rune(s[i]))) {
				i++
			}
		case c == '_' || c == ':' || unicode.IsLetter(rune(c)):
			name := ident()
			skipSpace()
			switch {
			case promqlKeywords[name]:
				if i < len(s) && s[i] == '(' { // a label list
					end := strings.IndexByte(s[i:], ')')
					if end < 0 {
						return nil, fmt.Errorf("unterminated label list in %q", expr)
					}
					i += end + 1
				}
			case promqlFuncs[name] && (strings.HasPrefix(s[i:], "by") || strings.HasPrefix(s[i:], "without")):
				// an aggregation with its grouping before the argument
			case i < len(s) && s[i] == '(':
				if !promqlFuncs[name] {
					return nil, fmt.Errorf("unknown function %s in %q", name, expr)
				}
			default:
				sel := selector{metric: name}
				if i < len(s) && s[i] == '{' {
					names, err := matchers()
					if err != nil {
						return nil, err
					}
					sel.labels = names
				}
				out = append(out, sel)
			}
		case c == '{':
			return nil, fmt.Errorf("selector without a metric name in %q", expr)
		default:
			i++
		}
	}
	return out, nil
}

func TestSelectorsLexer(t *testing.T) {
	got, err := selectors(`histogram_quantile(0.9, sum by (le) (rate(a_bucket{job=~"$job", kind!="x,}"}[$__rate_interval]))) - ignoring(kind) b{k='v'} > bool 1e3 or vector(0)`)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[{a_bucket [job kind]} {b [k]}]" {
		t.Fatalf("got %v", got)
	}
	for _, bad := range []string{`sume(x)`, `x{a="b"`, `{a="b"}`, `x{a=b}`} {
		if _, err := selectors(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// exposedSeries starts the binary, pushes one group and returns every
// series name of GET /metrics (histogram and summary parts included) with
// its label names.
func exposedSeries(t *testing.T) map[string]map[string]bool {
	t.Helper()
	web := testutil.FreeAddr(t)
	p, err := procs.Start("gateway", []string{binaryPath, "--web.listen-address=" + web, "--storage.path=" + t.TempDir(),
		"--raft.listen-address=" + testutil.FreeAddr(t), "--cluster.listen-address=" + testutil.FreeAddr(t), "--cluster.node-name=n1"}, procs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	base := "http://" + web
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx, base+"/-/ready"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/metrics/job/j", "text/plain", strings.NewReader("x 1\n"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("push: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	add := func(name string, m *dto.Metric, extra ...string) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, lp := range m.GetLabel() {
			out[name][lp.GetName()] = true
		}
		for _, l := range extra {
			out[name][l] = true
		}
	}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			case dto.MetricType_SUMMARY:
				add(name, m, "quantile")
				add(name+"_sum", m)
				add(name+"_count", m)
			default:
				add(name, m)
			}
		}
	}
	return out
}

// TestGrafanaDashboard checks deploy/grafana/pushgateway-cluster.json: it is
// JSON of the shape Grafana imports, and every PromQL expression selects
// only series the binary exposes (or Prometheus adds), with label names
// those series have.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID           string            `json:"uid"`
		Title         string            `json:"title"`
		SchemaVersion int               `json:"schemaVersion"`
		Panels        []json.RawMessage `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion == 0 || len(dash.Panels) == 0 {
		t.Fatalf("%s lacks uid, title, schemaVersion or panels", dashboardFile)
	}

	type panel struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Type    string `json:"type"`
		GridPos struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	exprs := map[string]string{} // expression -> where
	ids := map[int]string{}
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("panel: %v", err)
			}
			if p.Title == "" || p.Type == "" || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %d %q: missing title, type or a valid gridPos", p.ID, p.Title)
			}
			if other, dup := ids[p.ID]; dup {
				t.Errorf("panel id %d used by %q and %q", p.ID, other, p.Title)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" {
					t.Errorf("panel %q: target without expr or refId", p.Title)
				}
				exprs[tg.Expr] = fmt.Sprintf("panel %q", p.Title)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		switch q := v.Query.(type) {
		case string:
			if v.Type == "query" {
				exprs[labelValuesExpr(q)] = "variable " + v.Name
			}
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				exprs[labelValuesExpr(s)] = "variable " + v.Name
			}
		}
	}

	checkWithPromtool(t, exprs)
	series := exposedSeries(t)
	targetLabels := []string{"job", "instance"}
	used := map[string]bool{}
	for expr, where := range exprs {
		sels, err := selectors(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if len(sels) == 0 {
			t.Errorf("%s: %q selects no series", where, expr)
		}
		for _, sel := range sels {
			labels, ok := series[sel.metric]
			if !ok {
				if _, ok := prometheusSeries[sel.metric]; !ok {
					t.Errorf("%s: %q uses %s, which the binary does not expose", where, expr, sel.metric)
					continue
				}
			}
			used[sel.metric] = true
			for _, l := range sel.labels {
				if !labels[l] && !contains(targetLabels, l) {
					t.Errorf("%s: %q matches %s on label %q, which that series does not have (it has %v)", where, expr, sel.metric, l, keys(labels))
				}
			}
		}
	}
	// The dashboard covers what issue 8 asks for.
	for _, want := range []string{
		"pushgateway_cluster_is_leader", "pushgateway_cluster_raft_term", "pushgateway_cluster_raft_index",
		"pushgateway_cluster_write_commit_seconds_bucket", "pushgateway_http_requests_total", "push_time_seconds",
		"push_failure_time_seconds", "pushgateway_cluster_members", "pushgateway_cluster_forwarded_writes_total",
	} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

// checkWithPromtool parses every expression with Prometheus's own parser:
// as recording rules checked by promtool (Debian's prometheus package),
// Grafana's variables replaced by values of their kind.
func checkWithPromtool(t *testing.T, exprs map[string]string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed; PromQL syntax checked by the lexer only")
		return
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$__interval", "1m", "$job", ".+")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	names := make([]string, 0, len(exprs))
	for e := range exprs {
		names = append(names, e)
	}
	sort.Strings(names)
	for i, e := range names {
		q, _ := json.Marshal(vars.Replace(e)) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:expr%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules rejects a dashboard expression: %v\n%s\n%s", err, out, rules.String())
	}
}

// labelValuesExpr turns a Grafana label_values(expr, label) variable query
// into the expression it evaluates.
func labelValuesExpr(q string) string {
	if inner, ok := strings.CutPrefix(strings.TrimSpace(q), "label_values("); ok {
		inner = strings.TrimSuffix(inner, ")")
		if i := strings.LastIndexByte(inner, ','); i >= 0 {
			return strings.TrimSpace(inner[:i])
		}
		return inner
	}
	return q
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
