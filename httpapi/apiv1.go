package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// corsHeaders are set on every /api/v1 response, as upstream.
var corsHeaders = map[string]string{
	"Access-Control-Allow-Headers":  "Accept, Authorization, Content-Type, Origin",
	"Access-Control-Allow-Methods":  "GET, POST, DELETE, OPTIONS",
	"Access-Control-Allow-Origin":   "*",
	"Access-Control-Expose-Headers": "Date",
	"Cache-Control":                 "no-cache, no-store, must-revalidate",
}

// registerAPIv1 adds the /api/v1 routes (relative to /api/v1).
func (a *API) registerAPIv1(r *route.Router) {
	wrap := func(name string, f http.HandlerFunc) http.HandlerFunc {
		return a.metrics.instrument(name, func(w http.ResponseWriter, r *http.Request) {
			for h, v := range corsHeaders {
				w.Header().Set(h, v)
			}
			f(w, r)
		})
	}
	r.Options("/*path", wrap("api/v1/options", func(http.ResponseWriter, *http.Request) {}))
	r.Get("/status", wrap("api/v1/status", a.apiStatus))
	r.Get("/metrics", wrap("api/v1/metrics", a.apiMetrics))
	if a.opts.Cluster != nil {
		r.Get("/cluster", wrap("api/v1/cluster", a.apiCluster))
	}
	// Every admin route goes through adminOnly (--web.authorization-file).
	if a.opts.EnableAdminAPI {
		r.Put("/admin/wipe", a.metrics.instrument("wipe", a.adminOnly(a.wipe)))
		r.Get("/admin/snapshot", wrap("api/v1/admin/snapshot", a.adminOnly(a.apiSnapshot)))
		r.Put("/admin/restore", wrap("api/v1/admin/restore", a.adminOnly(a.apiRestore)))
		r.Put("/admin/delete", wrap("api/v1/admin/delete", a.adminOnly(a.apiDeleteMatching)))
		r.Post("/admin/delete", wrap("api/v1/admin/delete", a.adminOnly(a.apiDeleteMatching)))
		if a.opts.Cluster != nil {
			r.Del("/admin/cluster/members/:name", wrap("api/v1/admin/cluster/members", a.adminOnly(a.apiRemoveMember)))
			r.Post("/admin/cluster/transfer-leadership", wrap("api/v1/admin/cluster/transfer-leadership", a.adminOnly(a.apiTransferLeadership)))
		}
	}
}

// apiResponse is upstream's JSON envelope.
type apiResponse struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

func (a *API) respond(w http.ResponseWriter, data any) {
	b, err := json.Marshal(&apiResponse{Status: "success", Data: data})
	if err != nil {
		a.logger.Error("error marshaling JSON", "err", err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		b, _ = json.Marshal(&apiResponse{Status: "error", ErrorType: "bad_data", Error: err.Error()})
		_, _ = w.Write(b)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(b); err != nil {
		a.logger.Error("failed to write data to connection", "err", err)
	}
}

// setReadIndex sets IndexHeader on a read: the log index this node's state
// had applied before the read, so the answer shows every write up to it
// (for a write acknowledged with that index or a lower one, by any node,
// the answer shows it or a later write of the same group). A client can
// ask any node whether it has applied its write without reading the data.
func (a *API) setReadIndex(w http.ResponseWriter) {
	if i := a.opts.Store.AppliedIndex(); i > 0 {
		w.Header().Set(IndexHeader, strconv.FormatUint(i, 10))
	}
}

func (a *API) apiStatus(w http.ResponseWriter, _ *http.Request) {
	a.setReadIndex(w)
	a.respond(w, map[string]any{
		"flags":             a.opts.Flags,
		"start_time":        a.startTime,
		"build_information": a.opts.BuildInfo,
	})
}

// apiCluster reports this node's view of the cluster.
func (a *API) apiCluster(w http.ResponseWriter, _ *http.Request) {
	a.respond(w, a.opts.Cluster.Status())
}

// apiRemoveMember removes a member from the raft configuration for good.
func (a *API) apiRemoveMember(w http.ResponseWriter, r *http.Request) {
	name := route.Param(r.Context(), "name")
	if err := a.opts.Cluster.RemoveMember(r.Context(), name); err != nil {
		a.respondError(w, clusterErrorCode(err, http.StatusBadRequest), err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// respondError answers with upstream's error envelope.
func (a *API) respondError(w http.ResponseWriter, code int, err error) {
	typ := "bad_data"
	switch {
	case code >= 500:
		typ = "unavailable"
	case code == http.StatusForbidden:
		typ = "forbidden"
	}
	b, _ := json.Marshal(&apiResponse{Status: "error", ErrorType: typ, Error: err.Error()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// apiFamily is one family of a group in /api/v1/metrics.
type apiFamily struct {
	Timestamp time.Time        `json:"time_stamp"`
	Type      string           `json:"type"`
	Help      string           `json:"help,omitempty"`
	Metrics   []map[string]any `json:"metrics"`
}

// apiMetrics lists every group with its families, as upstream (groups in
// grouping-key order, where upstream's order is random). Each group's JSON
// comes from groupJSONCache; the answer is byte for byte what respond
// writes for the same groups (TestAPIMetricsCachedEqualsUncached).
func (a *API) apiMetrics(w http.ResponseWriter, r *http.Request) {
	if err := a.awaitCurrent(r); err != nil {
		a.setReadIndex(w)
		a.respondError(w, http.StatusServiceUnavailable, err)
		return
	}
	a.setReadIndex(w)
	groups := a.opts.Store.Groups()
	_, cs, filtered, err := requestSelectors(r)
	if err != nil {
		a.respondError(w, http.StatusBadRequest, err)
		return
	}
	if filtered {
		groups = matchingGroups(groups, cs)
	}
	parts, err := a.groupJSON.render(groups, a.opts.ExpireAfter, !filtered)
	if err != nil {
		// respond reports the error in upstream's words.
		a.respond(w, uncachedMetricsData(groups, a.opts.ExpireAfter))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	// The envelope as json.Marshal writes apiResponse{Status: "success",
	// Data: a non-empty []any}; the elements of a JSON array are encoded
	// independently of each other.
	write := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			a.logger.Error("failed to write data to connection", "err", err)
			return false
		}
		return true
	}
	if !write([]byte(`{"status":"success","data":[`)) {
		return
	}
	for i, b := range parts {
		if i > 0 && !write([]byte{','}) {
			return
		}
		if !write(b) {
			return
		}
	}
	write([]byte(`]}`))
}

// uncachedMetricsData is the data of /api/v1/metrics built from scratch.
func uncachedMetricsData(groups []*fsm.Group, expireAfter time.Duration) []any {
	res := make([]any, 0, len(groups))
	for _, g := range groups {
		res = append(res, groupJSON(g, expireAfter))
	}
	return res
}

// groupJSONCache keeps the JSON of every group in /api/v1/metrics by
// grouping key. Stored groups are immutable and every change stores a new
// *fsm.Group, so an entry is valid exactly as long as the store still
// holds the group it was made from.
type groupJSONCache struct {
	mu      sync.Mutex
	entries map[string]cachedGroupJSON
}

type cachedGroupJSON struct {
	from *fsm.Group
	json []byte
}

// render returns the JSON of each group, encoding only groups that changed
// since they were last rendered. The returned slices must not be modified.
// expireAfter is --push.expire-after, which does not change while the
// program runs. all says groups are all the store holds: then entries of
// groups deleted since are dropped.
func (c *groupJSONCache) render(groups []*fsm.Group, expireAfter time.Duration, all bool) ([][]byte, error) {
	out := make([][]byte, len(groups))
	var missing []int
	c.mu.Lock()
	if c.entries == nil {
		c.entries = make(map[string]cachedGroupJSON, len(groups))
	}
	for i, g := range groups {
		if e, ok := c.entries[g.Key]; ok && e.from == g {
			out[i] = e.json
		} else {
			missing = append(missing, i)
		}
	}
	c.mu.Unlock()
	for _, i := range missing {
		b, err := json.Marshal(groupJSON(groups[i], expireAfter))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range missing {
		c.entries[groups[i].Key] = cachedGroupJSON{from: groups[i], json: out[i]}
	}
	if all && len(c.entries) > len(groups) {
		// Groups were deleted (entries hold every group rendered now).
		keep := make(map[string]bool, len(groups))
		for _, g := range groups {
			keep[g.Key] = true
		}
		for k := range c.entries {
			if !keep[k] {
				delete(c.entries, k)
			}
		}
	}
	return out, nil
}

// groupJSON is a group in /api/v1/metrics: upstream's fields, then its
// expiry and who pushed it (beyond upstream; a family of the same name
// wins, so upstream's answer never changes).
func groupJSON(g *fsm.Group, expireAfter time.Duration) map[string]any {
	out := make(map[string]any, len(g.Families)+5)
	if after, at, ok := groupExpiry(g, expireAfter); ok {
		out["expire_after"] = model.Duration(after).String()
		out["expires_at"] = at.UTC().Format(time.RFC3339)
	}
	if !g.LastPushBy.IsZero() {
		by := map[string]string{"remote_addr": g.LastPushBy.RemoteAddr}
		if g.LastPushBy.User != "" {
			by["user"] = g.LastPushBy.User
		}
		out["last_push_by"] = by
	}
	out["labels"] = g.Labels
	out["last_push_successful"] = g.LastPushSuccess()
	for _, f := range g.Families {
		out[f.Name()] = apiFamily{
			Timestamp: time.Unix(0, f.TimeUnixNano),
			Type:      f.Type().String(),
			Help:      f.Help(),
			Metrics:   metricsJSON(f.MF().Metric, f.Type()),
		}
	}
	return out
}

func metricsJSON(ms []*dto.Metric, typ dto.MetricType) []map[string]any {
	out := make([]map[string]any, len(ms))
	for i, m := range ms {
		labels := make(map[string]string, len(m.Label))
		for _, lp := range m.Label {
			labels[lp.GetName()] = lp.GetValue()
		}
		e := map[string]any{"labels": labels}
		switch typ {
		case dto.MetricType_SUMMARY:
			q := map[string]string{}
			for _, qq := range m.GetSummary().GetQuantile() {
				q[fmt.Sprint(qq.GetQuantile())] = fmt.Sprint(qq.GetValue())
			}
			e["quantiles"] = q
			e["count"] = fmt.Sprint(m.GetSummary().GetSampleCount())
			e["sum"] = fmt.Sprint(m.GetSummary().GetSampleSum())
		case dto.MetricType_HISTOGRAM:
			h := m.GetHistogram()
			e["sum"] = fmt.Sprint(h.GetSampleSum())
			if len(h.GetNegativeSpan())+len(h.GetPositiveSpan()) > 0 {
				count, buckets := nativeBuckets(h)
				e["count"] = count
				e["buckets"] = buckets
			} else {
				b := map[string]string{}
				for _, bb := range h.GetBucket() {
					if c := bb.GetCumulativeCountFloat(); c > 0 {
						b[fmt.Sprint(bb.GetUpperBound())] = fmt.Sprint(c)
					} else {
						b[fmt.Sprint(bb.GetUpperBound())] = fmt.Sprint(bb.GetCumulativeCount())
					}
				}
				e["buckets"] = b
				if c := h.GetSampleCountFloat(); c > 0 {
					e["count"] = fmt.Sprint(c)
				} else {
					e["count"] = fmt.Sprint(h.GetSampleCount())
				}
			}
		default:
			e["value"] = fmt.Sprint(simpleValue(m))
		}
		out[i] = e
	}
	return out
}

func simpleValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}
