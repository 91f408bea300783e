package fsm

import (
	"maps"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// Families returns the pushed metric families merged by name across all
// groups, as the exposition shows them: families sorted by name, empty
// families left out, metrics ordered like client_golang's normalization
// (by label values) with ties broken by grouping key, so the order is the
// same on every node. A reserved name gets the gateway's own help string;
// otherwise the help of the group with the smallest grouping key wins.
//
// The result is cached and rebuilt only for names changed since the last
// call. The returned families are shared: callers must not modify them.
func (s *FSM) Families() []*dto.MetricFamily {
	s.mu.RLock()
	if out := s.exposed; out != nil {
		s.mu.RUnlock()
		return out
	}
	s.mu.RUnlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exposed != nil {
		return s.exposed
	}
	s.ix.settleAll()
	names := slices.Sorted(maps.Keys(s.ix.names))
	out := make([]*dto.MetricFamily, 0, len(names))
	for _, name := range names {
		e := s.ix.names[name]
		if e.merged == nil {
			e.merged = s.mergeFamily(name, e) // settled above
		}
		if len(e.merged.Metric) > 0 {
			out = append(out, e.merged)
		}
	}
	s.exposed = out
	return out
}

// mergeFamily builds the exposition of one family name across groups from
// the ordered list the index keeps.
func (s *FSM) mergeFamily(name string, e *nameEntry) *dto.MetricFamily {
	if _, ok := e.groups[e.minKey]; !ok {
		// That group left this name: find the new smallest key.
		first := true
		for k := range e.groups {
			if first || k < e.minKey {
				e.minKey, first = k, false
			}
		}
	}
	first := e.groups[e.minKey].MF
	merged := &dto.MetricFamily{
		Name:   proto.String(name),
		Help:   first.Help,
		Type:   first.Type,
		Unit:   first.Unit,
		Metric: make([]*dto.Metric, len(e.sorted)),
	}
	if r, ok := s.reserved[name]; ok {
		merged.Help = proto.String(r.Help)
	}
	for i, sm := range e.sorted {
		merged.Metric[i] = sm.m
	}
	return merged
}

// MetricLess orders metrics like client_golang's MetricSorter: by number of
// labels, then label values in order. (Timestamps are never stored.)
func MetricLess(a, b *dto.Metric) bool { return compareLabels(a, b) < 0 }
