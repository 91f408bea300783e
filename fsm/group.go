package fsm

// Names of the families the gateway adds to every group, and their help.
const (
	PushTimeMetricName        = "push_time_seconds"
	pushTimeMetricHelp        = "Last Unix time when changing this group in the Pushgateway succeeded."
	PushFailureTimeMetricName = "push_failure_time_seconds"
	pushFailureTimeMetricHelp = "Last Unix time when changing this group in the Pushgateway failed."
)

// Group is one metric group: everything pushed under one grouping key. A
// Group is immutable once stored; changes build a new Group.
type Group struct {
	// Key is the grouping key derived from Labels (see GroupingKey).
	Key string
	// Labels are the grouping labels, including "job".
	Labels GroupLabels
	// Families are the stored families, including push_time_seconds and
	// push_failure_time_seconds.
	Families Families
	// Expiry is the group's own expiry, from its last successful push's
	// X-Pushgateway-Expire-After (unset: --push.expire-after decides).
	Expiry Expiry
	// LastPushBy says who made the last successful push.
	LastPushBy PushedBy
}

// SortedLabelNames returns the grouping label names with "job" first and the
// others sorted, for presentation.
func (g *Group) SortedLabelNames() []string {
	names := make([]string, 1, g.Labels.Len())
	names[0] = "job"
	for n := range g.Labels.All() {
		if n != "job" {
			names = append(names, n) // in order: the labels are sorted
		}
	}
	return names
}

// SortedFamilyNames returns the names of the group's families, sorted.
func (g *Group) SortedFamilyNames() []string {
	return g.Families.Names()
}

// LastPushSuccess reports false if the group's last push failed, that is
// push_failure_time_seconds is later than push_time_seconds; true otherwise,
// including when one of them is missing.
func (g *Group) LastPushSuccess() bool {
	fail, success := g.Families.Get(PushFailureTimeMetricName), g.Families.Get(PushTimeMetricName)
	if fail == nil || success == nil {
		return true
	}
	return fail.GaugeValue() <= success.GaugeValue()
}

// seriesCount returns the number of metrics in the group (0 for nil).
func (g *Group) seriesCount() int {
	if g == nil {
		return 0
	}
	n := 0
	for _, f := range g.Families {
		n += len(f.Metrics())
	}
	return n
}

// clone returns a shallow copy of the group. Its families are shared:
// changes to them build a new list (Families.with).
func (g *Group) clone() *Group {
	c := *g
	return &c
}

// GroupingKey returns the key identifying the group with the given grouping
// labels: label names sorted, names and values joined by model.SeparatorByte.
func GroupingKey(labels map[string]string) string {
	return groupingKey(labels, sortedNames(labels))
}

// groupingKey is GroupingKey with the label names already sorted.
func groupingKey(labels map[string]string, names []string) string {
	return joinGroupingKey(func(yield func(string, string) bool) {
		for _, n := range names {
			if !yield(n, labels[n]) {
				return
			}
		}
	})
}
