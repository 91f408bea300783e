package fsm

import (
	"errors"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// ErrTimestamp is the verdict on a push whose metrics carry timestamps,
// with upstream's wording.
var ErrTimestamp = errors.New("pushed metrics must not have timestamps")

// hasTimestamps reports whether any pushed metric carries a timestamp.
func hasTimestamps(mfs []*dto.MetricFamily) bool {
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.TimestampMs != nil {
				return true
			}
		}
	}
	return false
}

// sanitizeLabels makes every metric of mf carry the grouping labels with the
// grouping values (overriding pushed values of the same name), adds an empty
// instance label where none is present and sorts the label pairs by name,
// as upstream does before storing.
func sanitizeLabels(mf *dto.MetricFamily, grouping map[string]string, groupingNames []string) {
	for _, m := range mf.GetMetric() {
		done := make(map[string]bool, len(grouping))
		hasInstance := false
		for _, lp := range m.GetLabel() {
			name := lp.GetName()
			if v, ok := grouping[name]; ok && !done[name] {
				lp.Value = proto.String(v)
				done[name] = true
			}
			if name == model.InstanceLabel {
				hasInstance = true
			}
		}
		for _, name := range groupingNames {
			if done[name] {
				continue
			}
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(name), Value: proto.String(grouping[name])})
			if name == model.InstanceLabel {
				hasInstance = true
			}
		}
		if !hasInstance {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(model.InstanceLabel), Value: proto.String("")})
		}
		sort.SliceStable(m.Label, func(i, j int) bool { return m.Label[i].GetName() < m.Label[j].GetName() })
	}
}

// sortedNames returns the keys of a label map in sorted order.
func sortedNames(labels map[string]string) []string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// timestampFamily builds the push_time_seconds or push_failure_time_seconds
// gauge of a group. A zero time gives the value 0, as upstream.
func timestampFamily(name, help string, grouping map[string]string, groupingNames []string, unixNano int64) *dto.MetricFamily {
	mf := &dto.MetricFamily{
		Name:   proto.String(name),
		Help:   proto.String(help),
		Type:   dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(float64(unixNano) / 1e9)}}},
	}
	sanitizeLabels(mf, grouping, groupingNames)
	return mf
}
