package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/prometheus/common/expfmt"
)

// ReadBarrier makes reads of the pushed metrics current. The cluster
// implements it with a read index: ReadBarrier returns once this node's
// state reflects every write acknowledged, by any node, before the call,
// or an error saying why this node cannot answer with current data.
type ReadBarrier interface {
	ReadBarrier(ctx context.Context) error
}

// awaitCurrent runs the read barrier before a read of the pushed metrics
// (/metrics, /api/v1/metrics, the metrics page); the caller answers 503
// with the error. Without a barrier (Options.Reads nil: stale reads) every
// read is served from the local state at once, and so is a read that asks
// for it with the query parameter StaleParam (as Consul's ?stale).
func (a *API) awaitCurrent(r *http.Request) error {
	if a.opts.Reads == nil || r.URL.Query().Has(StaleParam) {
		return nil
	}
	return a.opts.Reads.ReadBarrier(r.Context())
}

// StaleParam, present in the query of a read (/metrics?stale), serves that
// read from this node's state as it is, without a read index: what
// --cluster.stale-reads does for every read.
const StaleParam = "stale"

// SelfMetricsPath serves the node's own metrics only (go_*, process_*,
// pushgateway_http_*, pushgateway_cluster_*, storage and store figures),
// never waiting on the cluster: the path to scrape each node's health
// with, a cut-off node included.
const SelfMetricsPath = "/-/metrics"

// selfMetrics is the handler of SelfMetricsPath.
func (a *API) selfMetrics() http.Handler {
	if a.opts.Registry == nil {
		return http.NotFoundHandler()
	}
	return buffered(a.opts.Registry, a.logger)
}

// refuseStaleScrape answers a /metrics scrape this node cannot make
// current: 503 (a load balancer tries another node, Prometheus records the
// target as down rather than ingesting old values), with the reason and
// the node's own metrics in the text format, so whoever looks sees why.
func (a *API) refuseStaleScrape(w http.ResponseWriter, err error) {
	var body bytes.Buffer
	body.WriteString("# 503 Service Unavailable: this node cannot serve current pushed metrics: ")
	body.WriteString(strings.ReplaceAll(err.Error(), "\n", " "))
	body.WriteString("\n# Its own metrics follow (always on " + SelfMetricsPath + "); the other nodes serve the pushed ones.\n")
	if a.opts.Registry != nil {
		self, _ := a.opts.Registry.Gather() // what gathers, even on error
		enc := expfmt.NewEncoder(&body, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range self {
			if enc.Encode(mf) != nil {
				break
			}
		}
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	w.Header().Set("Retry-After", "1")
	a.setReadIndex(w)
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(body.Bytes())
}
