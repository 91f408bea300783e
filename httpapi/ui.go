package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// The web UI: server-rendered pages at /, /status and /cluster, and the
// assets they use (one stylesheet, one script, one icon) at /static/. All
// of it is embedded in the binary; pages reference nothing outside this
// node, so the UI works offline, and the Content-Security-Policy header
// keeps it that way.

//go:embed ui/templates/*.html ui/static/*
var uiFiles embed.FS

// uiAsset is one embedded static file.
type uiAsset struct {
	body        []byte
	contentType string
	// version is a short content hash: asset URLs carry it as ?v=, so a
	// new binary's assets are never served from a stale cache.
	version string
}

var (
	uiAssets    = loadUIAssets()
	uiTemplates = map[string]*template.Template{
		"metrics": parseUITemplate("metrics"),
		"status":  parseUITemplate("status"),
		"cluster": parseUITemplate("cluster"),
	}
)

// uiContentSecurityPolicy allows only this node's own scripts, styles,
// images and API calls.
const uiContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'"

func loadUIAssets() map[string]*uiAsset {
	types := map[string]string{
		".css": "text/css; charset=utf-8",
		".js":  "text/javascript; charset=utf-8",
		".svg": "image/svg+xml",
	}
	assets := map[string]*uiAsset{}
	err := fs.WalkDir(uiFiles, "ui/static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := types[path.Ext(p)]
		if !ok {
			return fmt.Errorf("no content type for %s", p)
		}
		sum := sha256.Sum256(b)
		assets[path.Base(p)] = &uiAsset{body: b, contentType: ct, version: hex.EncodeToString(sum[:6])}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return assets
}

func parseUITemplate(page string) *template.Template {
	funcs := template.FuncMap{
		"utc":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 MST") },
		"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"deref":   func(f *float64) float64 { return *f },
		"statusClass": func(s string) string {
			switch s {
			case "alive":
				return "ok"
			case "suspect", "left":
				return "warn"
			}
			return "bad"
		},
	}
	return template.Must(template.New(page).Funcs(funcs).ParseFS(uiFiles, "ui/templates/layout.html", "ui/templates/"+page+".html"))
}

// serveStatic serves the embedded assets. A request carrying the asset's
// current version (?v=, as every page links them) may be cached for good;
// any other is revalidated through the ETag.
func (a *API) serveStatic(w http.ResponseWriter, r *http.Request) {
	asset := uiAssets[strings.TrimPrefix(route.Param(r.Context(), "filepath"), "/")]
	if asset == nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", asset.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", `"`+asset.version+`"`)
	if r.URL.Query().Get("v") == asset.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(asset.body))
}

// uiPage is what the layout template renders; Body is the page's own data.
type uiPage struct {
	Page, Title string
	// Prefix is the path prefix of every link: the path of
	// --web.external-url when it has one, else the route prefix.
	Prefix      string
	MetricsPath string
	AdminAPI    bool
	BuildInfo   map[string]string
	Cluster     *ClusterStatus
	Now         time.Time
	Body        any
}

// Asset returns the versioned URL of an embedded asset.
func (p *uiPage) Asset(name string) string {
	v := ""
	if a := uiAssets[name]; a != nil {
		v = "?v=" + a.version
	}
	return p.Prefix + "/static/" + name + v
}

// clusterStatus returns this node's view of the cluster, or nil without a
// cluster.
func (a *API) clusterStatus() *ClusterStatus {
	if a.opts.Cluster == nil {
		return nil
	}
	st := a.opts.Cluster.Status()
	return &st
}

// linkPrefix is the path prefix of links, form actions and asset URLs.
func (a *API) linkPrefix() string {
	if a.opts.ExternalPathPrefix != "" {
		return a.opts.ExternalPathPrefix
	}
	return a.opts.RoutePrefix
}

func (a *API) renderUI(w http.ResponseWriter, page, title string, body any) {
	data := &uiPage{
		Page: page, Title: title, Prefix: a.linkPrefix(), MetricsPath: a.opts.MetricsPath,
		AdminAPI: a.opts.EnableAdminAPI, BuildInfo: a.opts.BuildInfo, Cluster: a.clusterStatus(),
		Now: time.Now(), Body: body,
	}
	var buf bytes.Buffer
	if err := uiTemplates[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		a.logger.Error("render page", "page", page, "err", err)
		http.Error(w, "error rendering page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", uiContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	_, _ = w.Write(buf.Bytes())
}

// ---- the metrics page (/) ----

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
	Families              []uiFamily
}

type uiMetricsBody struct {
	Groups     []uiGroup
	Consistent bool
	WipeURL    string
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
		Open:       len(groups) <= uiOpenGroupsMax,
	}
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
	a.renderUI(w, "metrics", "Metrics", body)
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
		v := g.Labels[n]
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
	out.LastPush = pushTime(g.Families["push_time_seconds"])
	out.LastFailure = pushTime(g.Families["push_failure_time_seconds"])
	for _, name := range g.SortedFamilyNames() {
		out.Families = append(out.Families, uiFamilyOf(name, g.Families[name], g.Labels))
	}
	return out
}

// pushTime reads push_time_seconds or push_failure_time_seconds.
func pushTime(f *fsm.Family) time.Time {
	if f == nil || len(f.MF.GetMetric()) == 0 {
		return time.Time{}
	}
	s := f.MF.GetMetric()[0].GetGauge().GetValue()
	if s <= 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return time.Time{}
	}
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9))
}

func uiFamilyOf(name string, f *fsm.Family, grouping map[string]string) uiFamily {
	typ := f.MF.GetType()
	out := uiFamily{
		Name:   name,
		Help:   f.MF.GetHelp(),
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
	for _, m := range f.MF.GetMetric() {
		s := uiSample{}
		for _, lp := range m.GetLabel() {
			gv, isGrouping := grouping[lp.GetName()]
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
			if (name == "push_time_seconds" || name == "push_failure_time_seconds") && v > 0 {
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

// ---- the cluster page (/cluster) ----

type uiClusterBody struct {
	Available bool
	Status    *ClusterStatus
	// Lag is commit index minus applied index.
	Lag      uint64
	Snapshot string
	APIPath  string
	// Usage of the cluster-wide quotas.
	Groups, Series       int
	MaxGroups, MaxSeries uint64
}

func (a *API) clusterPage(w http.ResponseWriter, _ *http.Request) {
	st := a.clusterStatus()
	body := &uiClusterBody{Available: st != nil, Status: st, Snapshot: snapshotAge(st), APIPath: a.linkPrefix() + "/api/v1/cluster",
		Groups: a.opts.Store.Len(), Series: a.opts.Store.Series(), MaxGroups: a.opts.MaxGroups, MaxSeries: a.opts.MaxTotalSeries}
	if st != nil && st.Raft.CommitIndex > st.Raft.AppliedIndex {
		body.Lag = st.Raft.CommitIndex - st.Raft.AppliedIndex
	}
	a.renderUI(w, "cluster", "Cluster", body)
}

// snapshotAge describes the age of the node's newest raft snapshot, or
// "n/a" without a cluster.
func snapshotAge(st *ClusterStatus) string {
	switch {
	case st == nil:
		return "n/a"
	case st.SnapshotAgeSeconds < 0:
		return "none yet"
	}
	return (time.Duration(st.SnapshotAgeSeconds) * time.Second).String() + " ago"
}
