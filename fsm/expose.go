package fsm

import (
	"maps"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// Families returns the exposition (Exposed) as messages, built anew on
// every call: for the formats without a cached encoding, and for tests.
func (s *FSM) Families() []*dto.MetricFamily {
	exposed := s.Exposed()
	out := make([]*dto.MetricFamily, len(exposed))
	for i, ef := range exposed {
		out[i] = ef.Proto()
	}
	return out
}

// Exposed returns the pushed metric families merged by name across all
// groups, as the exposition shows them: families sorted by name, empty
// families left out, metrics ordered like client_golang's normalization
// (by label values) with ties broken by grouping key, so the order is the
// same on every node. A reserved name gets the gateway's own help string;
// otherwise the help of the group with the smallest grouping key wins.
//
// The result is cached and rebuilt only for names changed since the last
// call. The returned families are shared: callers must not modify them.
//
// Writes wait only while the changes are taken: the changed groups are
// swapped out and the changed names' headers made under the state
// machine's lock, which is all that must see one state. Settling the changes into
// each name's order (a binary search per changed metric, slowed by cache
// misses: 135 ms for 36,000 changed metrics at 100,000 groups) and copying
// the changed names' metric lists (100,000 pointers a name at 100,000
// groups) happen after the lock is released. exposeMu keeps the order
// still meanwhile: only its holder settles or reads it, and Apply records
// its changes beside the ones being settled.
func (s *FSM) Exposed() []*ExposedFamily {
	s.mu.RLock()
	if out := s.exposed; out != nil {
		s.mu.RUnlock()
		return out
	}
	s.mu.RUnlock()

	s.exposeMu.Lock()
	defer s.exposeMu.Unlock()
	s.mu.Lock()
	if out := s.exposed; out != nil {
		s.mu.Unlock()
		return out
	}
	gen, ix := s.exposeGen, s.ix
	names := slices.Sorted(maps.Keys(ix.names))
	out := make([]*ExposedFamily, len(names))
	changes := ix.takeChanges()
	var (
		entries  = map[string]*nameEntry{} // the names to settle, by name
		settling []*nameEntry              // the same, in name order
		at       []int                     // their positions in out
		versions []uint64                  // their versions when the changes were taken
	)
	for i, name := range names {
		e := ix.names[name]
		if e.merged != nil {
			out[i] = e.merged
			continue
		}
		out[i] = &ExposedFamily{Header: s.exposedHeader(name, e, changes)}
		entries[name], settling = e, append(settling, e)
		at, versions = append(at, i), append(versions, e.version)
	}
	s.mu.Unlock()

	if s.beforeSettle != nil {
		s.beforeSettle()
	}
	ix.settleChanges(entries, changes)
	for k, e := range settling {
		// Settled above to the state the changes were taken from, and
		// unchanged while exposeMu is held.
		out[at[k]].Metrics = slices.Clone(e.metrics)
	}

	kept := make([]*ExposedFamily, 0, len(out))
	for _, ef := range out {
		if len(ef.Metrics) > 0 {
			kept = append(kept, ef)
		}
	}
	// Cache what no command changed meanwhile (what did is the exposition
	// of the state the changes were taken from: right for this caller,
	// stale for the next).
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range settling {
		if e.version == versions[k] {
			e.merged = out[at[k]]
		}
	}
	if s.exposeGen == gen {
		s.exposed = kept
	}
	return kept
}

// exposedHeader returns the exposition of one family name across groups
// without its metrics: the name, and the help and type of the group with
// the smallest key (a reserved name's help is the gateway's). Callers hold
// s.mu and exposeMu, and have taken the changed groups (taken), not yet
// settled.
func (s *FSM) exposedHeader(name string, e *nameEntry, taken map[string]groupChange) *dto.MetricFamily {
	if s.ix.family(e.minKey, name) == nil {
		// That group left this name: find the new smallest key among the
		// groups holding it. Each is in the order (not settled yet, so
		// groups that left may be there too), among the taken changes, or
		// among the groups with an empty family of the name; the map
		// of groups says which still hold it, looked up only for a key
		// smaller than the best so far.
		found := false
		consider := func(key string) {
			if (!found || key < e.minKey) && s.ix.family(key, name) != nil {
				e.minKey, found = key, true
			}
		}
		for _, om := range e.sorted {
			consider(om.key)
		}
		for key := range taken {
			consider(key)
		}
		for key := range e.empty {
			consider(key)
		}
	}
	first := s.ix.family(e.minKey, name)
	h := first.header()
	mf := &dto.MetricFamily{Name: proto.String(name), Help: h.help, Type: h.typ, Unit: h.unit}
	if r, ok := s.reserved[name]; ok {
		mf.Help = proto.String(r.Help)
	}
	return mf
}

// MetricLess orders metrics like client_golang's MetricSorter: by number of
// labels, then label values in order. (Timestamps are never stored.)
func MetricLess(a, b *Metric) bool { return compareLabels(a.labels, b.labels) < 0 }

// LabelsLess is MetricLess for the label pairs of metric messages.
func LabelsLess(a, b []*dto.LabelPair) bool { return compareLabels(a, b) < 0 }

// ExposedFamily is one family name across groups as the exposition shows
// it: its header and its metrics, in exposition order. Shared and never
// modified once made.
type ExposedFamily struct {
	// Header holds the name, help, type and unit; its Metric is nil.
	Header *dto.MetricFamily
	// Metrics are the stored metrics, in order.
	Metrics []*Metric
}

// Name returns the family's name.
func (e *ExposedFamily) Name() string { return e.Header.GetName() }

// Proto returns the family as a message, its metrics built from the
// records (Metric.Proto). Callers must not modify it.
func (e *ExposedFamily) Proto() *dto.MetricFamily {
	return &dto.MetricFamily{Name: e.Header.Name, Help: e.Header.Help, Type: e.Header.Type, Unit: e.Header.Unit,
		Metric: messages(len(e.Metrics), slices.Values(e.Metrics))}
}
