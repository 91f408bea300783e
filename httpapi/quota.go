package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// Names and help of the store self-metrics: how full the store is against
// the cluster-wide quotas (--push.max-groups, --push.max-total-series).
const (
	storeGroupsName = "pushgateway_store_groups"
	storeGroupsHelp = "Groups in the store (the same on every node that applied the same log)."
	storeSeriesName = "pushgateway_store_series"
	storeSeriesHelp = "Metrics (series) in all groups, push_time_seconds and push_failure_time_seconds included; what --push.max-total-series counts."
	storeQuotaName  = "pushgateway_store_quota"
	storeQuotaHelp  = "Cluster-wide quotas this node holds pushes to when it leads (--push.max-groups, --push.max-total-series; 0: none)."
)

// storeFamilies are the store self-metrics, reserved like the others.
var storeFamilies = map[string]fsm.ReservedFamily{
	storeGroupsName: {Type: dto.MetricType_GAUGE, Help: storeGroupsHelp},
	storeSeriesName: {Type: dto.MetricType_GAUGE, Help: storeSeriesHelp},
	storeQuotaName:  {Type: dto.MetricType_GAUGE, Help: storeQuotaHelp},
}

// storeCollector reports the store's size and the quotas.
type storeCollector struct {
	store                        Store
	maxGroups, maxSeries         uint64
	groupsDesc, seriesDesc, quot *prometheus.Desc
}

func newStoreCollector(store Store, maxGroups, maxSeries uint64) *storeCollector {
	return &storeCollector{
		store: store, maxGroups: maxGroups, maxSeries: maxSeries,
		groupsDesc: prometheus.NewDesc(storeGroupsName, storeGroupsHelp, nil, nil),
		seriesDesc: prometheus.NewDesc(storeSeriesName, storeSeriesHelp, nil, nil),
		quot:       prometheus.NewDesc(storeQuotaName, storeQuotaHelp, []string{"quota"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.groupsDesc
	ch <- c.seriesDesc
	ch <- c.quot
}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.groupsDesc, prometheus.GaugeValue, float64(c.store.Len()))
	ch <- prometheus.MustNewConstMetric(c.seriesDesc, prometheus.GaugeValue, float64(c.store.Series()))
	ch <- prometheus.MustNewConstMetric(c.quot, prometheus.GaugeValue, float64(c.maxGroups), "groups")
	ch <- prometheus.MustNewConstMetric(c.quot, prometheus.GaugeValue, float64(c.maxSeries), "series")
}
