package httpapi

import (
	"log/slog"
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// exposition returns the /metrics handler: the node's own metrics merged
// with the pushed families, with promhttp's content negotiation (text
// 0.0.4 with escaping, delimited protobuf, gzip), as upstream.
//
// A consistent store (the normal case) is merged without re-checking. An
// inconsistent one (after unchecked pushes, or upstream's failure record
// colliding with another group) goes through client_golang's full gather
// check, so the scrape fails with 500 exactly like upstream.
func (a *API) exposition() http.Handler {
	pushed := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return a.opts.Store.Families(), nil })
	checked := prometheus.Gatherers{a.opts.Registry, pushed}
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		if !a.opts.Store.Consistent() {
			return checked.Gather()
		}
		self, err := a.opts.Registry.Gather()
		return mergeFamilies(self, a.opts.Store.Families()), err
	})
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(a.logger.Handler(), slog.LevelError),
	})
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
