package fsm

import (
	"errors"
	"maps"
	"slices"
	"strings"

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

// groupingPairs holds the label pairs of one group's grouping labels, and
// an empty instance label, created once per command and shared by every
// metric it stores: stored label pairs are never modified, and sharing them
// keeps a group's memory (and the garbage collector's work) small.
type groupingPairs struct {
	labels   GroupLabels
	pairs    []*dto.LabelPair // labels' pairs, in their order
	instance *dto.LabelPair   // instance="", created when first needed
	sorted   []*dto.LabelPair // sortedStored's, made when first needed
}

func newGroupingPairs(labels GroupLabels) *groupingPairs {
	gp := &groupingPairs{labels: labels, pairs: make([]*dto.LabelPair, labels.Len())}
	for i, l := range labels.sorted {
		gp.pairs[i] = &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)}
	}
	return gp
}

// groupingPairsOf returns the grouping pairs of a command on the group
// stored as prev (nil: none yet). A group's grouping labels are the same
// for every command on it (its key is made of them), so the pairs of
// prev's push_time_seconds metric, which holds them all, sorted, are taken
// over when they say exactly that: a push to an existing group then makes
// no pairs, and its metrics carry the same pair pointers as the ones they
// replace, which settling the exposition order compares without reading
// the pairs (sameLabels). Otherwise new pairs are made.
func groupingPairsOf(prev *Group, labels GroupLabels) *groupingPairs {
	if prev != nil {
		if f := prev.Families.Get(PushTimeMetricName); f != nil && len(f.metrics) == 1 {
			if gp := reusedGroupingPairs(f.metrics[0].labels, labels); gp != nil {
				return gp
			}
		}
	}
	return newGroupingPairs(labels)
}

// reusedGroupingPairs returns the grouping pairs found in sorted (the
// labels of a metric holding only the stored pairs, sorted by name), or nil
// if sorted is not exactly what sortedStored would make of them.
func reusedGroupingPairs(sorted []*dto.LabelPair, labels GroupLabels) *groupingPairs {
	_, hasInstance := labels.search(model.InstanceLabel)
	want := labels.Len()
	if !hasInstance {
		want++
	}
	if len(sorted) != want {
		return nil
	}
	gp := &groupingPairs{labels: labels, pairs: make([]*dto.LabelPair, labels.Len()), sorted: sorted}
	for k, lp := range sorted {
		name := lp.GetName()
		if k > 0 && sorted[k-1].GetName() >= name {
			return nil
		}
		if i, ok := labels.search(name); ok {
			if lp.GetValue() != labels.sorted[i].Value {
				return nil
			}
			gp.pairs[i] = lp
		} else if name == model.InstanceLabel && lp.GetValue() == "" {
			gp.instance = lp
		} else {
			return nil
		}
	}
	return gp
}

// emptyInstance returns the shared instance="" pair, creating it once.
func (gp *groupingPairs) emptyInstance() *dto.LabelPair {
	if gp.instance == nil {
		gp.instance = &dto.LabelPair{Name: proto.String(model.InstanceLabel), Value: proto.String("")}
	}
	return gp.instance
}

// stored returns the pairs every stored metric of the group carries: the
// grouping labels, and instance="" unless instance is one of them.
func (gp *groupingPairs) stored() []*dto.LabelPair {
	if _, ok := gp.labels.search(model.InstanceLabel); ok {
		return gp.pairs
	}
	return append(gp.pairs[:len(gp.pairs):len(gp.pairs)], gp.emptyInstance())
}

// sortedStored returns the stored pairs sorted by name: the labels of a
// metric pushed without any, once sanitized. Made once per command.
func (gp *groupingPairs) sortedStored() []*dto.LabelPair {
	if gp.sorted == nil {
		gp.sorted = slices.Clip(slices.Clone(gp.stored()))
		sortLabelPairs(gp.sorted)
	}
	return gp.sorted
}

// sanitizeLabels makes every metric of mf carry the grouping labels with the
// grouping values (overriding pushed values of the same name), adds an empty
// instance label where none is present and sorts the label pairs by name,
// as upstream does before storing.
//
// A metric pushed without labels gets the group's stored pairs, sorted, as
// they are: one slice for every such metric of the command (and its
// timestamp families), never modified, as stored labels never are.
func sanitizeLabels(mf *dto.MetricFamily, gp *groupingPairs) {
	for _, m := range mf.GetMetric() {
		if len(m.Label) == 0 {
			m.Label = gp.sortedStored()
			continue
		}
		done := make([]bool, gp.labels.Len())
		hasInstance := false
		for k, lp := range m.GetLabel() {
			name := lp.GetName()
			if i, ok := gp.labels.search(name); ok && !done[i] {
				// The pair is replaced, not changed: decoded pairs may be
				// shared (intern.go).
				m.Label[k] = gp.pairs[i]
				done[i] = true
			}
			if name == model.InstanceLabel {
				hasInstance = true
			}
		}
		for i, l := range gp.labels.sorted {
			if done[i] {
				continue
			}
			m.Label = append(m.Label, gp.pairs[i])
			if l.Name == model.InstanceLabel {
				hasInstance = true
			}
		}
		if !hasInstance {
			m.Label = append(m.Label, gp.emptyInstance())
		}
		sortLabelPairs(m.Label)
	}
}

// sortLabelPairs sorts label pairs by name, keeping the order of equal
// names (so a duplicate stays visible to the consistency check).
func sortLabelPairs(pairs []*dto.LabelPair) {
	slices.SortStableFunc(pairs, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
}

// sortedNames returns the keys of a label map in sorted order.
func sortedNames(labels map[string]string) []string {
	names := slices.Sorted(maps.Keys(labels))
	return names
}

// appendTimestampFamilies appends the timestamp families that a change of
// group g (as it was, or its clone) at unixNano stores, as upstream:
// push_time_seconds at unixNano, or push_failure_time_seconds when the
// change failed, and the other one at 0 if g has none.
func appendTimestampFamilies(stored []Family, g *Group, gp *groupingPairs, unixNano int64, failed bool) []Family {
	set, other := pushTimeHeader, pushFailureTimeHeader
	if failed {
		set, other = other, set
	}
	stored = append(stored, timestampFamily(set, gp, unixNano, unixNano))
	if g.Families.Get(*other.name) == nil {
		stored = append(stored, timestampFamily(other, gp, 0, unixNano))
	}
	return stored
}

// timestampFamily builds the push_time_seconds or push_failure_time_seconds
// gauge of a group, of header h. A zero time gives the value 0, as
// upstream.
func timestampFamily(h *familyHeader, gp *groupingPairs, valueUnixNano, storedUnixNano int64) Family {
	// One record, its label pairs the group's (shared by both timestamp
	// families of a command), and the header shared by every timestamp
	// family: stored families are never modified.
	m := []Metric{{labels: gp.sortedStored(), value: float64(valueUnixNano) / 1e9, kind: kindGauge | hasValue}}
	return Family{hdr: h, metrics: m, TimeUnixNano: storedUnixNano}
}

// The timestamp families' headers, made once rather than looked up in the
// intern table for every push.
var (
	pushTimeHeader = &familyHeader{name: proto.String(PushTimeMetricName), help: proto.String(pushTimeMetricHelp),
		typ: &metricTypes[dto.MetricType_GAUGE]}
	pushFailureTimeHeader = &familyHeader{name: proto.String(PushFailureTimeMetricName), help: proto.String(pushFailureTimeMetricHelp),
		typ: &metricTypes[dto.MetricType_GAUGE]}
)

// compactLabels moves the label pairs of a push's metrics, once sanitized,
// into one allocation of their exact size, and a metric with the same
// pairs as the one before it shares that one's slice. The decoder's slots
// left room for the grouping labels after every metric's own, and the
// families of one push mostly carry the same labels (a job's `kind` or
// `env`), so a stored metric kept four slots where it shares three.
// Metrics holding the group's shared pairs (shared: sortedStored, never
// empty, as it holds instance) keep them. The slots the pairs leave go
// with the decoded command.
func compactLabels(mfs []*dto.MetricFamily, shared []*dto.LabelPair) {
	// distinct calls f for every metric with pairs of its own, first set
	// when they differ from those of the metric before (as f left them).
	distinct := func(f func(m *dto.Metric, first bool)) {
		var last []*dto.LabelPair
		for _, mf := range mfs {
			for _, m := range mf.Metric {
				if len(m.Label) == 0 || &m.Label[0] == &shared[0] {
					continue
				}
				first := !slices.Equal(m.Label, last)
				f(m, first)
				last = m.Label
			}
		}
	}
	n := 0
	distinct(func(m *dto.Metric, first bool) {
		if first {
			n += len(m.Label)
		}
	})
	slab := make([]*dto.LabelPair, 0, n)
	var last []*dto.LabelPair
	distinct(func(m *dto.Metric, first bool) {
		if first {
			start := len(slab)
			slab = append(slab, m.Label...)
			last = slab[start:len(slab):len(slab)]
		}
		m.Label = last
	})
}
