package httpapi

import (
	"encoding/json"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// MergeFamiliesForTest exposes mergeFamilies to the external tests.
var MergeFamiliesForTest = mergeFamilies

// UncachedAPIMetricsForTest is the /api/v1/metrics body built without the
// per-group cache, as apiMetrics wrote it before the cache.
func UncachedAPIMetricsForTest(groups []*fsm.Group) ([]byte, error) {
	return json.Marshal(&apiResponse{Status: "success", Data: uncachedMetricsData(groups, 0)})
}
