package fsm

import (
	"maps"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// Names of the families the gateway adds to every group, and their help.
const (
	PushTimeMetricName        = "push_time_seconds"
	pushTimeMetricHelp        = "Last Unix time when changing this group in the Pushgateway succeeded."
	PushFailureTimeMetricName = "push_failure_time_seconds"
	pushFailureTimeMetricHelp = "Last Unix time when changing this group in the Pushgateway failed."
)

// Family is a stored metric family together with the time of the command
// that last wrote it (upstream's TimestampedMetricFamily). A Family and the
// MetricFamily it points to are never modified once stored.
type Family struct {
	// MF is the sanitized metric family: every metric carries the grouping
	// labels and an instance label, label pairs sorted by name.
	MF *dto.MetricFamily
	// TimeUnixNano is the receive time of the command that stored it.
	TimeUnixNano int64
}

// Group is one metric group: everything pushed under one grouping key. A
// Group is immutable once stored; changes build a new Group.
type Group struct {
	// Key is the grouping key derived from Labels (see GroupingKey).
	Key string
	// Labels are the grouping labels, including "job".
	Labels map[string]string
	// Families maps metric family names to the stored families, including
	// push_time_seconds and push_failure_time_seconds.
	Families map[string]*Family
	// Expiry is the group's own expiry, from its last successful push's
	// X-Pushgateway-Expire-After (unset: --push.expire-after decides).
	Expiry Expiry
	// LastPushBy says who made the last successful push.
	LastPushBy PushedBy
}

// SortedLabelNames returns the grouping label names with "job" first and the
// others sorted, for presentation.
func (g *Group) SortedLabelNames() []string {
	names := make([]string, 1, len(g.Labels))
	names[0] = "job"
	for n := range g.Labels {
		if n != "job" {
			names = append(names, n)
		}
	}
	sort.Strings(names[1:])
	return names
}

// SortedFamilyNames returns the names of the group's families, sorted.
func (g *Group) SortedFamilyNames() []string {
	names := slices.Sorted(maps.Keys(g.Families))
	return names
}

// LastPushSuccess reports false if the group's last push failed, that is
// push_failure_time_seconds is later than push_time_seconds; true otherwise,
// including when one of them is missing.
func (g *Group) LastPushSuccess() bool {
	fail, ok1 := g.Families[PushFailureTimeMetricName]
	success, ok2 := g.Families[PushTimeMetricName]
	if !ok1 || !ok2 {
		return true
	}
	return gaugeValue(fail.MF) <= gaugeValue(success.MF)
}

func gaugeValue(mf *dto.MetricFamily) float64 {
	if len(mf.GetMetric()) == 0 {
		return 0
	}
	return mf.GetMetric()[0].GetGauge().GetValue()
}

// seriesCount returns the number of metrics in the group (0 for nil).
func (g *Group) seriesCount() int {
	if g == nil {
		return 0
	}
	n := 0
	for _, f := range g.Families {
		n += len(f.MF.GetMetric())
	}
	return n
}

// clone returns a shallow copy of the group whose family map may be changed.
func (g *Group) clone() *Group {
	fams := make(map[string]*Family, len(g.Families)+2)
	for n, f := range g.Families {
		fams[n] = f
	}
	return &Group{Key: g.Key, Labels: g.Labels, Families: fams, Expiry: g.Expiry, LastPushBy: g.LastPushBy}
}

// GroupingKey returns the key identifying the group with the given grouping
// labels: label names sorted, names and values joined by model.SeparatorByte.
func GroupingKey(labels map[string]string) string {
	return groupingKey(labels, sortedNames(labels))
}

// groupingKey is GroupingKey with the label names already sorted.
func groupingKey(labels map[string]string, names []string) string {
	var sb strings.Builder
	for i, n := range names {
		if i > 0 {
			sb.WriteByte(model.SeparatorByte)
		}
		sb.WriteString(n)
		sb.WriteByte(model.SeparatorByte)
		sb.WriteString(labels[n])
	}
	return sb.String()
}
