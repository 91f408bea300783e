package fsm

import (
	"fmt"
	"sort"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// nameEntry indexes one metric family name across all groups.
type nameEntry struct {
	// groups maps the key of every group holding a family of this name to
	// that family.
	groups map[string]*Family
	// types counts those families by type. With the consistency check on
	// there is only ever one type; with it off there may be several.
	types map[dto.MetricType]int
	// sorted holds the metrics of all these families in exposition order
	// as of the last exposition; changes since then wait in pendingRemove
	// (group keys whose metrics must go) and pendingAdd (metrics by group
	// key), so Apply stays O(1) per family and a scrape pays for what
	// changed, not for a full sort.
	sorted        []sortedMetric
	pendingRemove map[string]struct{}
	pendingAdd    map[string][]*dto.Metric
	// merged caches the exposition of this name across groups; nil when
	// it must be rebuilt.
	merged *dto.MetricFamily
}

// sortedMetric is one metric of a family name with the group it belongs to.
type sortedMetric struct {
	m   *dto.Metric
	key string
}

// exposedBefore orders metrics of one name across groups: client_golang's
// order by label values, ties broken by grouping key.
func exposedBefore(a, b sortedMetric) bool {
	if MetricLess(a.m, b.m) {
		return true
	}
	if MetricLess(b.m, a.m) {
		return false
	}
	return a.key < b.key
}

// settle applies the pending changes to the ordered list: drop the metrics
// of removed groups, then insert the added ones by binary search, or
// append and sort when many arrived.
func (e *nameEntry) settle() {
	if len(e.pendingRemove) > 0 {
		kept := e.sorted[:0]
		for _, sm := range e.sorted {
			if _, gone := e.pendingRemove[sm.key]; !gone {
				kept = append(kept, sm)
			}
		}
		clear(e.sorted[len(kept):])
		e.sorted = kept
		clear(e.pendingRemove)
	}
	if len(e.pendingAdd) == 0 {
		return
	}
	added := 0
	for _, ms := range e.pendingAdd {
		added += len(ms)
	}
	keys := make([]string, 0, len(e.pendingAdd))
	for k := range e.pendingAdd {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if added*8 > len(e.sorted) {
		for _, k := range keys {
			for _, m := range e.pendingAdd[k] {
				e.sorted = append(e.sorted, sortedMetric{m: m, key: k})
			}
		}
		sort.SliceStable(e.sorted, func(i, j int) bool { return exposedBefore(e.sorted[i], e.sorted[j]) })
	} else {
		for _, k := range keys {
			for _, m := range e.pendingAdd[k] {
				sm := sortedMetric{m: m, key: k}
				i := sort.Search(len(e.sorted), func(i int) bool { return exposedBefore(sm, e.sorted[i]) })
				e.sorted = append(e.sorted, sortedMetric{})
				copy(e.sorted[i+1:], e.sorted[i:])
				e.sorted[i] = sm
			}
		}
	}
	clear(e.pendingAdd)
}

// index holds what the incremental consistency check and the exposition
// need to know about the whole store.
type index struct {
	names map[string]*nameEntry
	// series counts stored metrics by the hash of name and label pairs.
	series map[uint64]int32
	// dups holds one of the metrics of every series stored more than once,
	// and mixed the names stored with more than one type: the store
	// inconsistencies that upstream's full gather would report. They arise
	// from unchecked pushes and from the failure record of a rejected push
	// to a new group.
	dups  map[uint64]dupSeries
	mixed map[string]struct{}
}

// dupSeries is a series stored more than once.
type dupSeries struct {
	name   string
	metric *dto.Metric
}

func newIndex() *index {
	return &index{names: map[string]*nameEntry{}, series: map[uint64]int32{}, dups: map[uint64]dupSeries{}, mixed: map[string]struct{}{}}
}

// consistent reports whether a full gather of the store would succeed (as
// far as duplicate series and mixed types go).
func (ix *index) consistent() bool { return len(ix.dups) == 0 && len(ix.mixed) == 0 }

var separator = []byte{model.SeparatorByte}

// seriesHash hashes a metric's family name and its (sorted) label pairs
// with a fixed-seed hash, so every node computes the same value.
func seriesHash(name string, m *dto.Metric) uint64 {
	h := xxhash.New()
	_, _ = h.WriteString(name)
	_, _ = h.Write(separator)
	for _, lp := range m.GetLabel() {
		_, _ = h.WriteString(lp.GetName())
		_, _ = h.Write(separator)
		_, _ = h.WriteString(lp.GetValue())
		_, _ = h.Write(separator)
	}
	return h.Sum64()
}

// add records family f of group key in the index.
func (ix *index) add(key, name string, f *Family) {
	e := ix.names[name]
	if e == nil {
		e = &nameEntry{groups: map[string]*Family{}, types: map[dto.MetricType]int{}, pendingRemove: map[string]struct{}{}, pendingAdd: map[string][]*dto.Metric{}}
		ix.names[name] = e
	}
	e.groups[key] = f
	e.pendingAdd[key] = f.MF.GetMetric()
	e.types[f.MF.GetType()]++
	if len(e.types) > 1 {
		ix.mixed[name] = struct{}{}
	}
	e.merged = nil
	for _, m := range f.MF.GetMetric() {
		h := seriesHash(name, m)
		if ix.series[h]++; ix.series[h] == 2 {
			ix.dups[h] = dupSeries{name: name, metric: m}
		}
	}
}

// remove forgets family f of group key.
func (ix *index) remove(key, name string, f *Family) {
	e := ix.names[name]
	if e == nil {
		return
	}
	delete(e.groups, key)
	delete(e.pendingAdd, key)
	e.pendingRemove[key] = struct{}{}
	t := f.MF.GetType()
	if e.types[t]--; e.types[t] <= 0 {
		delete(e.types, t)
	}
	if len(e.types) <= 1 {
		delete(ix.mixed, name)
	}
	e.merged = nil
	if len(e.groups) == 0 {
		delete(ix.names, name)
	}
	for _, m := range f.MF.GetMetric() {
		h := seriesHash(name, m)
		ix.series[h]--
		switch c := ix.series[h]; {
		case c <= 0:
			delete(ix.series, h)
		case c == 1:
			delete(ix.dups, h)
		}
	}
}

// storeErrors describes the inconsistencies already in the store, in the
// wording of a full gather, in a deterministic order.
func (ix *index) storeErrors() []error {
	var errs []error
	hashes := make([]uint64, 0, len(ix.dups))
	for h := range ix.dups {
		hashes = append(hashes, h)
	}
	sort.Slice(hashes, func(i, j int) bool {
		a, b := ix.dups[hashes[i]], ix.dups[hashes[j]]
		if a.name != b.name {
			return a.name < b.name
		}
		return hashes[i] < hashes[j]
	})
	for _, h := range hashes {
		d := ix.dups[h]
		for n := int32(1); n < ix.series[h]; n++ {
			errs = append(errs, fmt.Errorf("collected metric %q { %s} was collected before with the same name and label values", d.name, d.metric))
		}
	}
	names := make([]string, 0, len(ix.mixed))
	for n := range ix.mixed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		e := ix.names[name]
		keys := make([]string, 0, len(e.groups))
		for k := range e.groups {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		first := e.groups[keys[0]].MF.GetType()
		for _, k := range keys[1:] {
			if mf := e.groups[k].MF; mf.GetType() != first && len(mf.GetMetric()) > 0 {
				errs = append(errs, fmt.Errorf("collected metric %q { %s} is not a %s", name, mf.GetMetric()[0], first))
				break
			}
		}
	}
	return errs
}

// replaceGroup updates the index for a group changing from old to new;
// either may be nil (creation, deletion). Families are compared by pointer:
// unchanged families cost nothing.
func (ix *index) replaceGroup(old, new *Group) {
	if old != nil {
		for name, f := range old.Families {
			if new == nil || new.Families[name] != f {
				ix.remove(old.Key, name, f)
			}
		}
	}
	if new != nil {
		for name, f := range new.Families {
			if old == nil || old.Families[name] != f {
				ix.add(new.Key, name, f)
			}
		}
	}
}

// liveType returns a type of the stored families named name, ignoring the
// one held by group skipKey, and whether there is any.
func (ix *index) liveType(name, skipKey string) (dto.MetricType, bool) {
	e := ix.names[name]
	if e == nil {
		return 0, false
	}
	skipType, skipping := dto.MetricType(0), false
	if f, ok := e.groups[skipKey]; ok {
		skipType, skipping = f.MF.GetType(), true
	}
	var best dto.MetricType
	found := false
	for t, n := range e.types {
		if skipping && t == skipType {
			n--
		}
		if n > 0 && (!found || t < best) {
			best, found = t, true
		}
	}
	return best, found
}
