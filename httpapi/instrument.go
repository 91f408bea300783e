package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// Names and help strings of the HTTP self-metrics, as upstream.
const (
	requestsName     = "pushgateway_http_requests_total"
	requestsHelp     = "Total HTTP requests processed by the Pushgateway, excluding scrapes."
	pushSizeName     = "pushgateway_http_push_size_bytes"
	pushSizeHelp     = "HTTP request size for pushes to the Pushgateway."
	pushDurationName = "pushgateway_http_push_duration_seconds"
	pushDurationHelp = "HTTP request duration for pushes to the Pushgateway."
)

var summaryObjectives = map[float64]float64{0.1: 0.01, 0.5: 0.05, 0.9: 0.01}

// httpMetrics are the HTTP self-metrics upstream exposes.
type httpMetrics struct {
	requests     *prometheus.CounterVec
	pushSize     *prometheus.SummaryVec
	pushDuration *prometheus.SummaryVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: requestsName, Help: requestsHelp},
			[]string{"handler", "code", "method"}),
		pushSize: prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: pushSizeName, Help: pushSizeHelp, Objectives: summaryObjectives},
			[]string{"method"}),
		pushDuration: prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: pushDurationName, Help: pushDurationHelp, Objectives: summaryObjectives},
			[]string{"method"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.pushSize, m.pushDuration)
	}
	return m
}

// instrument counts requests of a handler by code and method.
func (m *httpMetrics) instrument(handlerName string, h http.HandlerFunc) http.HandlerFunc {
	return promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(prometheus.Labels{"handler": handlerName}), h)
}

// instrumentPush adds the push size and duration summaries.
func (m *httpMetrics) instrumentPush(h http.HandlerFunc) http.HandlerFunc {
	return promhttp.InstrumentHandlerRequestSize(m.pushSize,
		promhttp.InstrumentHandlerDuration(m.pushDuration, m.instrument("push", h)))
}

// ReservedFamilies returns the families the gateway exposes itself, which
// pushed families of the same name must agree with in type: everything reg
// gathers now plus the HTTP metrics, whose vectors are empty before the
// first request. reg must already hold every self-metric collector.
func ReservedFamilies(reg prometheus.Gatherer) (map[string]fsm.ReservedFamily, error) {
	out := map[string]fsm.ReservedFamily{
		requestsName:     {Type: dto.MetricType_COUNTER, Help: requestsHelp},
		pushSizeName:     {Type: dto.MetricType_SUMMARY, Help: pushSizeHelp},
		pushDurationName: {Type: dto.MetricType_SUMMARY, Help: pushDurationHelp},
	}
	for name, f := range storeFamilies {
		out[name] = f
	}
	for name, f := range authzFamilies {
		out[name] = f
	}
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		out[mf.GetName()] = fsm.ReservedFamily{Type: mf.GetType(), Help: mf.GetHelp()}
	}
	return out, nil
}
