package httpapi

import (
	"log/slog"
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// exposition returns the /metrics handler: the node's own metrics merged
// with the pushed families, with promhttp's content negotiation (text
// 0.0.4 with escaping, delimited protobuf, gzip), as upstream.
//
// The text and delimited-protobuf answers for a consistent store are
// assembled from cached bytes (renderCache): only families and metrics
// changed since the last scrape are encoded again. Everything else (the
// protobuf debug formats, and an inconsistent store, which must fail the
// scrape with 500 exactly like upstream's full gather) goes through
// promhttp with client_golang's checking Gatherers.
func (a *API) exposition() http.Handler {
	pushed := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return a.opts.Store.Families(), nil })
	checked := prometheus.Gatherers{a.opts.Registry, pushed}
	slow := promhttp.HandlerFor(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		if !a.opts.Store.Consistent() {
			return checked.Gather()
		}
		self, err := a.opts.Registry.Gather()
		return mergeFamilies(self, a.opts.Store.Families()), err
	}), promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(a.logger.Handler(), slog.LevelError),
	})
	cache := newRenderCache()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
		if !cacheable(format) || !a.opts.Store.Consistent() {
			slow.ServeHTTP(w, r)
			return
		}
		self, err := a.opts.Registry.Gather()
		if err != nil {
			slow.ServeHTTP(w, r)
			return
		}
		a.writeCached(w, r, format, cache, self, a.opts.Store.Families())
	})
}

// writeCached writes the exposition from the render cache.
func (a *API) writeCached(w http.ResponseWriter, r *http.Request, format expfmt.Format, cache *renderCache, self, pushed []*dto.MetricFamily) {
	h := w.Header()
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Type", string(format))
	out := http.ResponseWriter(w)
	var body interface {
		Write([]byte) (int, error)
	} = out
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		gz := gzipWriters.Get().(*gzipWriter)
		gz.Reset(w)
		defer func() {
			if err := gz.Close(); err != nil {
				a.logger.Debug("finish gzip scrape response", "err", err)
			}
			gzipWriters.Put(gz)
		}()
		body = gz
	}
	enc := expfmt.NewEncoder(body, format)
	fail := func(err error) {
		// Headers are out already; stop sending, like promhttp.
		a.logger.Error("error encoding and sending metric family", "err", err)
	}
	i, j := 0, 0
	for i < len(self) || j < len(pushed) {
		switch {
		case j >= len(pushed) || (i < len(self) && self[i].GetName() < pushed[j].GetName()):
			if err := enc.Encode(self[i]); err != nil {
				fail(err)
				return
			}
			i++
		case i >= len(self) || pushed[j].GetName() < self[i].GetName():
			b, err := cache.family(format, pushed[j])
			if err == nil {
				_, err = body.Write(b)
			}
			if err != nil {
				fail(err)
				return
			}
			j++
		default:
			if err := enc.Encode(mergeFamilies(self[i:i+1], pushed[j:j+1])[0]); err != nil {
				fail(err)
				return
			}
			i++
			j++
		}
	}
	if cache.size(format) > len(pushed) {
		names := make(map[string]bool, len(pushed))
		for _, mf := range pushed {
			names[mf.GetName()] = true
		}
		cache.forget(names)
	}
}

// mergeFamilies merges two name-sorted family lists. A pushed family with
// the name of one of the node's own keeps the node's help and type, and
// the metrics of both are ordered as in a gather.
func mergeFamilies(self, pushed []*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(self)+len(pushed))
	i, j := 0, 0
	for i < len(self) && j < len(pushed) {
		a, b := self[i], pushed[j]
		switch {
		case a.GetName() < b.GetName():
			out = append(out, a)
			i++
		case a.GetName() > b.GetName():
			out = append(out, b)
			j++
		default:
			m := &dto.MetricFamily{
				Name:   a.Name,
				Help:   a.Help,
				Type:   a.Type,
				Metric: append(append(make([]*dto.Metric, 0, len(a.Metric)+len(b.Metric)), a.Metric...), b.Metric...),
			}
			sort.SliceStable(m.Metric, func(x, y int) bool { return fsm.MetricLess(m.Metric[x], m.Metric[y]) })
			out = append(out, m)
			i++
			j++
		}
	}
	out = append(out, self[i:]...)
	return append(out, pushed[j:]...)
}
