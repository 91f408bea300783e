package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// The metrics page (/): every group with its families and values, the
// delete buttons, and the wipe button of the admin API. The page frame,
// templates and assets are in ui.go.

type uiLabel struct {
	Name, Value string
	// Grouping marks a sample label that is one of the group's grouping
	// labels (shown dimmed).
	Grouping bool
}

type uiKV struct{ K, V string }

type uiSample struct {
	Labels []uiLabel
	// Value of a counter, gauge or untyped sample; Hint renders the value
	// of push_time_seconds and push_failure_time_seconds as a time.
	Value, Hint string
	// Count, Sum and Buckets (classic buckets or quantiles) of a histogram
	// or summary.
	Count, Sum string
	Buckets    []uiKV
	// Native is set for a native histogram: NativeInfo describes its
	// schema and zero bucket, NativeBuckets are its populated buckets.
	Native        bool
	NativeInfo    string
	NativeBuckets []uiKV
}

type uiFamily struct {
	Name, Help, Type string
	// Kind is "simple", "histogram" or "summary".
	Kind    string
	Pushed  time.Time
	Samples []uiSample
}

type uiGroup struct {
	Labels []uiLabel
	// LabelsJSON feeds the client-side filter.
	LabelsJSON string
	// Desc is the grouping key as text, for the confirmation dialog.
	Desc      string
	DeleteURL string
	Failed    bool
	// LastPush and LastFailure come from push_time_seconds and
	// push_failure_time_seconds (zero when never).
	LastPush, LastFailure time.Time
	// PushedBy names who made the last successful push: the user and the
	// client's address ("" when not recorded).
	PushedBy string
	// ExpiresAt is when the group expires (zero if never), ExpiresIn the
	// time left as of rendering, ExpireAfter the group's expiry after a
	// push.
	ExpiresAt              time.Time
	ExpiresIn, ExpireAfter string
	Families               []uiFamily
}

type uiMetricsBody struct {
	Groups     []uiGroup
	Consistent bool
	WipeURL    string
	// Selector is the page's match[] selectors as typed (joined by ", "
	// when the URL holds several); Selected is set when they apply, Total
	// counts the groups before selection, SelectorError says why the
	// selectors do not parse (the page shows no groups then).
	Selector string
	// Selectors are the selector box's inputs: one per match[] value, at
	// least one.
	Selectors     []string
	Selected      bool
	Total         int
	SelectorError string
	// DeleteMatchingURL is the admin delete of the selected groups (with
	// dry_run=true first, by the page's script).
	DeleteMatchingURL string
	// Open expands the groups initially (when there are few).
	Open bool
}

// uiOpenGroupsMax is the number of groups up to which the metrics page shows
// them expanded.
const uiOpenGroupsMax = 5

func (a *API) metricsPage(w http.ResponseWriter, r *http.Request) {
	if err := a.awaitCurrent(r); err != nil {
		http.Error(w, "This node cannot show current metrics: "+err.Error()+"\nThe other nodes of the cluster can.", http.StatusServiceUnavailable)
		return
	}
	groups := a.opts.Store.Groups()
	body := &uiMetricsBody{
		Consistent: a.opts.Store.Consistent(),
		WipeURL:    a.linkPrefix() + "/api/v1/admin/wipe",
		Total:      len(groups),
	}
	code := http.StatusOK
	body.Selectors = []string{""}
	if values := nonEmpty(r.URL.Query()[matchParam]); len(values) > 0 {
		body.Selector, body.Selectors = strings.Join(values, ", "), values
		_, cs, err := parseSelectors(values)
		if err != nil {
			body.SelectorError = err.Error()
			code = http.StatusBadRequest
			groups = nil
		} else {
			body.Selected = true
			groups = matchingGroups(groups, cs)
			body.DeleteMatchingURL = a.linkPrefix() + "/api/v1/admin/delete?" + url.Values{matchParam: values}.Encode()
		}
	}
	body.Open = len(groups) <= uiOpenGroupsMax
	for _, g := range groups {
		body.Groups = append(body.Groups, a.uiGroup(g))
	}
	// Show groups by job, then by the other grouping labels (the store
	// orders them by label name, so "instance" before "job").
	sort.SliceStable(body.Groups, func(i, j int) bool {
		li, lj := body.Groups[i].Labels, body.Groups[j].Labels
		for k := 0; k < len(li) && k < len(lj); k++ {
			if li[k] != lj[k] {
				if li[k].Name != lj[k].Name {
					return li[k].Name < lj[k].Name
				}
				return li[k].Value < lj[k].Value
			}
		}
		return len(li) < len(lj)
	})
	a.renderUIStatus(w, code, "metrics", "Metrics", body)
}

// nonEmpty drops the empty values of the selector box (the page's form
// sends match[]= when it is cleared).
func nonEmpty(values []string) []string {
	var out []string
	for _, v := range values {
		if strings.TrimSpace(v) != "" {
			out = append(out, v)
		}
	}
	return out
}

func (a *API) uiGroup(g *fsm.Group) uiGroup {
	names := g.SortedLabelNames()
	out := uiGroup{Failed: !g.LastPushSuccess()}
	labelsJSON, _ := json.Marshal(g.Labels)
	out.LabelsJSON = string(labelsJSON)
	var desc []string
	var del strings.Builder
	del.WriteString(a.linkPrefix() + "/metrics")
	for _, n := range names {
		v := g.Labels.Get(n)
		out.Labels = append(out.Labels, uiLabel{Name: n, Value: v})
		desc = append(desc, n+"="+strconv.Quote(v))
		if n != "job" && a.escaping != model.NoEscaping {
			n = model.EscapeName(n, a.escaping)
		}
		enc := "="
		if v != "" {
			enc = base64.RawURLEncoding.EncodeToString([]byte(v))
		}
		del.WriteString("/" + n + base64Suffix + "/" + enc)
	}
	out.Desc = strings.Join(desc, ", ")
	out.DeleteURL = del.String()
	out.LastPush = pushTime(g.Families.Get(fsm.PushTimeMetricName))
	out.LastFailure = pushTime(g.Families.Get(fsm.PushFailureTimeMetricName))
	out.PushedBy = pushedByText(g.LastPushBy)
	if after, at, ok := groupExpiry(g, a.opts.ExpireAfter); ok {
		out.ExpiresAt, out.ExpireAfter = at, model.Duration(after).String()
		out.ExpiresIn = "now"
		if left := at.Sub(a.opts.Now()).Round(time.Second); left > 0 {
			out.ExpiresIn = "in " + model.Duration(left).String()
		}
	}
	for _, f := range g.Families {
		out.Families = append(out.Families, uiFamilyOf(f, g.Labels))
	}
	return out
}

// pushedByText renders who pushed as "user ci from 10.0.0.7:51234", or
// only the address without basic auth.
func pushedByText(by fsm.PushedBy) string {
	switch {
	case by.User != "" && by.RemoteAddr != "":
		return "user " + by.User + " from " + by.RemoteAddr
	case by.User != "":
		return "user " + by.User
	}
	return by.RemoteAddr
}

// pushTime reads push_time_seconds or push_failure_time_seconds.
func pushTime(f *fsm.Family) time.Time {
	if f == nil {
		return time.Time{}
	}
	s := f.GaugeValue()
	if s <= 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return time.Time{}
	}
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9))
}

func uiFamilyOf(f *fsm.Family, grouping fsm.GroupLabels) uiFamily {
	name, typ := f.Name(), f.Type()
	out := uiFamily{
		Name:   name,
		Help:   f.Help(),
		Type:   strings.ReplaceAll(strings.ToLower(typ.String()), "_", " "),
		Kind:   "simple",
		Pushed: time.Unix(0, f.TimeUnixNano),
	}
	switch typ {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		out.Kind = "histogram"
	case dto.MetricType_SUMMARY:
		out.Kind = "summary"
	}
	for _, m := range f.MF().Metric {
		s := uiSample{}
		for _, lp := range m.GetLabel() {
			gv, isGrouping := grouping.Lookup(lp.GetName())
			s.Labels = append(s.Labels, uiLabel{Name: lp.GetName(), Value: lp.GetValue(), Grouping: isGrouping && gv == lp.GetValue()})
		}
		switch out.Kind {
		case "summary":
			sm := m.GetSummary()
			s.Count = strconv.FormatUint(sm.GetSampleCount(), 10)
			s.Sum = formatFloat(sm.GetSampleSum())
			for _, q := range sm.GetQuantile() {
				s.Buckets = append(s.Buckets, uiKV{K: "φ " + formatFloat(q.GetQuantile()), V: formatFloat(q.GetValue())})
			}
		case "histogram":
			h := m.GetHistogram()
			s.Sum = formatFloat(h.GetSampleSum())
			if c := h.GetSampleCountFloat(); c > 0 {
				s.Count = formatFloat(c)
			} else {
				s.Count = strconv.FormatUint(h.GetSampleCount(), 10)
			}
			for _, b := range h.GetBucket() {
				v := strconv.FormatUint(b.GetCumulativeCount(), 10)
				if c := b.GetCumulativeCountFloat(); c > 0 {
					v = formatFloat(c)
				}
				s.Buckets = append(s.Buckets, uiKV{K: "le " + formatFloat(b.GetUpperBound()), V: v})
			}
			if len(h.GetNegativeSpan())+len(h.GetPositiveSpan()) > 0 || h.GetZeroThreshold() > 0 || h.Schema != nil {
				s.Native = true
				s.NativeInfo = fmt.Sprintf("schema %d, zero threshold %s", h.GetSchema(), formatFloat(h.GetZeroThreshold()))
				_, buckets := nativeBuckets(h)
				for _, b := range buckets {
					s.NativeBuckets = append(s.NativeBuckets, uiKV{K: nativeInterval(b), V: fmt.Sprint(b[3])})
				}
			}
		default:
			v := simpleValue(m)
			s.Value = formatFloat(v)
			if (name == fsm.PushTimeMetricName || name == fsm.PushFailureTimeMetricName) && v > 0 {
				if t := pushTime(f); !t.IsZero() {
					s.Hint = t.UTC().Format("2006-01-02 15:04:05.000 MST")
				}
			}
		}
		out.Samples = append(out.Samples, s)
	}
	return out
}

// nativeInterval renders a bucket of nativeBuckets ([boundaries, lower,
// upper, count]) as an interval such as "(0.5, 1]".
func nativeInterval(b []any) string {
	open, closeB := "(", "]"
	switch b[0] {
	case boundsRightOpen:
		open, closeB = "[", ")"
	case boundsClosed:
		open, closeB = "[", "]"
	case 2:
		open, closeB = "(", ")"
	}
	return fmt.Sprintf("%s%v, %v%s", open, b[1], b[2], closeB)
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
