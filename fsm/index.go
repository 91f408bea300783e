package fsm

import (
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
	// merged caches the exposition of this name across groups; nil when
	// it must be rebuilt.
	merged *dto.MetricFamily
}

// index holds what the incremental consistency check and the exposition
// need to know about the whole store.
type index struct {
	names map[string]*nameEntry
	// series counts stored metrics by the hash of name and label pairs.
	series map[uint64]int32
}

func newIndex() *index {
	return &index{names: map[string]*nameEntry{}, series: map[uint64]int32{}}
}

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
		e = &nameEntry{groups: map[string]*Family{}, types: map[dto.MetricType]int{}}
		ix.names[name] = e
	}
	e.groups[key] = f
	e.types[f.MF.GetType()]++
	e.merged = nil
	for _, m := range f.MF.GetMetric() {
		ix.series[seriesHash(name, m)]++
	}
}

// remove forgets family f of group key.
func (ix *index) remove(key, name string, f *Family) {
	e := ix.names[name]
	if e == nil {
		return
	}
	delete(e.groups, key)
	t := f.MF.GetType()
	if e.types[t]--; e.types[t] <= 0 {
		delete(e.types, t)
	}
	e.merged = nil
	if len(e.groups) == 0 {
		delete(ix.names, name)
	}
	for _, m := range f.MF.GetMetric() {
		h := seriesHash(name, m)
		if ix.series[h]--; ix.series[h] <= 0 {
			delete(ix.series, h)
		}
	}
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
