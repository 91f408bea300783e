package fsm

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// nameEntry indexes one metric family name across all groups.
type nameEntry struct {
	// holders is the number of groups holding a family of this name (the
	// families themselves are found through the index's groups: a map per
	// name, of every group holding it, cost 30-40 bytes per series at
	// 100,000 groups).
	holders int
	// types counts those families by type. With the consistency check on
	// there is only ever one type; with it off there may be several.
	types map[dto.MetricType]int
	// sorted holds the metrics of all these families in exposition order
	// as of the last exposition; the groups changed since then wait in
	// the index's changed, so Apply stays O(1) per group and a scrape pays
	// for what changed, not for a full sort. Only the holder of the state
	// machine's exposeMu reads or changes sorted and metrics, and Apply
	// never does: the order is settled without the lock writes need.
	sorted []orderedMetric
	// metrics are sorted's metrics, in the same order, kept in step with
	// it: the exposition copies them in one move (gathering them from
	// sorted, a pointer every 40 bytes, took most of a scrape after a push
	// at 100,000 groups).
	metrics []*Metric
	// settled is set once the order was first settled (or restored). An
	// entry is made when a name gains its first holder and dropped when it
	// loses its last, order and all, so until then its order holds
	// nothing and every family of the name among the changed groups is a
	// change to it, even one the group held when the order was last
	// settled: a consistency check may take a name's only holder away and
	// put it back, dropping the name's entry in between. The settler's,
	// under exposeMu; Apply only makes entries without it.
	settled bool
	// empty holds the keys of the groups holding a family of this name
	// without metrics (nil when there are none, the usual case): with
	// sorted, every group holding the name, once the changes are settled.
	empty map[string]struct{}
	// minKey is a lower bound of the keys of the groups holding this
	// name, and their minimum whenever that group holds it (the help and
	// type of the exposition come from that group's family).
	minKey string
	// merged caches the exposition of this name across groups; nil when
	// it must be rebuilt. version counts the changes to this name.
	merged  *ExposedFamily
	version uint64
}

// index holds what the incremental consistency check and the exposition
// need to know about the whole store.
type index struct {
	// groups are the indexed groups by key: the state machine's own map
	// (or a restored state's), where the index finds the family of a name
	// that a group holds.
	groups map[string]*Group
	names  map[string]*nameEntry
	// series holds the hash of name and label pairs of every stored
	// metric: a set (hashset.go), since a series is stored once unless the
	// store is inconsistent; a Go map of counts took about 60 bytes per
	// series at 1.2 M series.
	series *hashSet
	// changed holds every group changed since the exposition order was
	// last settled, by key: one entry per group, however many of its
	// families changed (a map of the changed metrics per family name,
	// 12 entries per push, held 37 MB at the end of a fill of 100,000
	// groups). changedSpare is an emptied map of changes settled before,
	// for the next takeChanges (nil: none); the settler's, under exposeMu.
	changed, changedSpare map[string]groupChange
	// dups holds every series stored more than once, by its hash, with its
	// family name and its number of copies, and mixed the names stored
	// with more than one type: the store inconsistencies that upstream's
	// full gather would report. They arise from unchecked pushes and from
	// the failure record of a rejected push to a new group.
	dups  map[uint64]dupSeries
	mixed map[string]struct{}
}

// dupSeries is a series stored more than once.
type dupSeries struct {
	name string
	// copies is the number of stored metrics of the series, at least 2.
	copies int32
}

// newIndex returns an empty index of the given groups (empty as well).
func newIndex(groups map[string]*Group) *index {
	return &index{groups: groups, names: map[string]*nameEntry{}, series: newHashSet(0), changed: map[string]groupChange{},
		dups: map[uint64]dupSeries{}, mixed: map[string]struct{}{}}
}

// family returns the family named name held by group key, or nil.
func (ix *index) family(key, name string) *Family {
	if g := ix.groups[key]; g != nil {
		return g.Families.Get(name)
	}
	return nil
}

// copies returns the number of stored metrics of the series with hash h.
func (ix *index) copies(h uint64) int32 {
	if !ix.series.Has(h) {
		return 0
	}
	if d, ok := ix.dups[h]; ok {
		return d.copies
	}
	return 1
}

// consistent reports whether a full gather of the store would succeed (as
// far as duplicate series and mixed types go).
func (ix *index) consistent() bool { return len(ix.dups) == 0 && len(ix.mixed) == 0 }

// seriesHash hashes a metric's family name and its (sorted) label pairs
// with a fixed-seed hash, so every node computes the same value: the hash
// of name, then every label name and value, each followed by
// model.SeparatorByte. The bytes are gathered on the stack and hashed in
// one call (writing them piecewise into a digest took 1.7 times as long:
// this runs for every series a push touches and a restore holds).
func seriesHash(name string, m *Metric) uint64 {
	var stack [512]byte
	b := append(stack[:0], name...)
	b = append(b, model.SeparatorByte)
	for _, lp := range m.labels {
		b = append(b, lp.GetName()...)
		b = append(b, model.SeparatorByte)
		b = append(b, lp.GetValue()...)
		b = append(b, model.SeparatorByte)
	}
	return xxhash.Sum64(b)
}

// newNameEntry returns an empty entry.
func newNameEntry() *nameEntry {
	return &nameEntry{types: map[dto.MetricType]int{}}
}

// enter records family f of group key in the index (the exposition order
// learns of it from the index's changed groups).
func (ix *index) enter(key, name string, f *Family) {
	e := ix.names[name]
	if e == nil {
		e = newNameEntry()
		ix.names[name] = e
	}
	e.hold(key, f)
	if e.holders == 1 || key < e.minKey {
		e.minKey = key
	}
	if len(e.types) > 1 {
		ix.mixed[name] = struct{}{}
	}
	e.merged = nil
	e.version++
	for m := range f.All() {
		ix.countSeries(name, seriesHash(name, m))
	}
}

// hold counts family f of group key among the entry's holders and types,
// and among its empty families if it has no metrics.
func (e *nameEntry) hold(key string, f *Family) {
	e.holders++
	if len(f.Metrics()) == 0 {
		if e.empty == nil {
			e.empty = map[string]struct{}{}
		}
		e.empty[key] = struct{}{}
	}
	e.types[f.Type()]++
}

// countSeries counts one more stored metric of the series with hash h, of
// family name; the second makes it a duplicate.
func (ix *index) countSeries(name string, h uint64) {
	if ix.series.Add(h) {
		return
	}
	d, ok := ix.dups[h]
	if !ok {
		d = dupSeries{name: name, copies: 1}
	}
	d.copies++
	ix.dups[h] = d
}

// uncountSeries counts one stored metric of the series with hash h less.
func (ix *index) uncountSeries(h uint64) {
	d, ok := ix.dups[h]
	switch {
	case !ok:
		ix.series.Delete(h)
	case d.copies <= 2:
		delete(ix.dups, h)
	default:
		d.copies--
		ix.dups[h] = d
	}
}

// remove forgets family f of group key.
func (ix *index) remove(key, name string, f *Family) {
	e := ix.names[name]
	if e == nil {
		return
	}
	e.holders--
	if len(f.Metrics()) == 0 {
		delete(e.empty, key)
	}
	t := f.Type()
	if e.types[t]--; e.types[t] <= 0 {
		delete(e.types, t)
	}
	if len(e.types) <= 1 {
		delete(ix.mixed, name)
	}
	e.merged = nil
	e.version++
	if e.holders == 0 {
		delete(ix.names, name)
	}
	for m := range f.All() {
		ix.uncountSeries(seriesHash(name, m))
	}
}

// storeErrors describes the inconsistencies already in the store, in the
// wording of a full gather, in a deterministic order. A duplicate series is
// named by its second metric in group key order: a function of the state,
// the same on every node whatever order its groups were stored in.
func (ix *index) storeErrors() []error {
	var errs []error
	hashes := make([]uint64, 0, len(ix.dups))
	dupNames := map[string]struct{}{}
	for h, d := range ix.dups {
		hashes = append(hashes, h)
		dupNames[d.name] = struct{}{}
	}
	type stored struct {
		key string
		m   *Metric
	}
	// One pass over the groups for every name involved (an inconsistent
	// store is rare, and upstream gathers everything for every push): the
	// stored metrics of the duplicate series, and the keys of the groups
	// holding a name of mixed types.
	found := map[uint64][]stored{}
	mixedKeys := map[string][]string{}
	for k, g := range ix.groups {
		for _, f := range g.Families {
			name := f.Name()
			if _, ok := ix.mixed[name]; ok {
				mixedKeys[name] = append(mixedKeys[name], k)
			}
			if _, ok := dupNames[name]; !ok {
				continue
			}
			for m := range f.All() {
				h := seriesHash(name, m)
				if d, dup := ix.dups[h]; dup && d.name == name {
					found[h] = append(found[h], stored{k, m})
				}
			}
		}
	}
	// The metric a duplicate is named by: its second in key order (a
	// group's own metrics stay in their order).
	second := make(map[uint64]*Metric, len(found))
	for h, ms := range found {
		slices.SortStableFunc(ms, func(a, b stored) int { return strings.Compare(a.key, b.key) })
		if len(ms) > 1 {
			second[h] = ms[1].m
		}
	}
	sort.Slice(hashes, func(i, j int) bool {
		a, b := ix.dups[hashes[i]].name, ix.dups[hashes[j]].name
		if a != b {
			return a < b
		}
		return hashes[i] < hashes[j]
	})
	for _, h := range hashes {
		d := ix.dups[h]
		for n := int32(1); n < d.copies; n++ {
			errs = append(errs, fmt.Errorf("collected metric %q { %s} was collected before with the same name and label values", d.name, second[h]))
		}
	}
	names := slices.Sorted(maps.Keys(ix.mixed))
	for _, name := range names {
		keys := mixedKeys[name]
		slices.Sort(keys)
		first := ix.family(keys[0], name).Type()
		for _, k := range keys[1:] {
			if f := ix.family(k, name); f.Type() != first && len(f.Metrics()) > 0 {
				errs = append(errs, fmt.Errorf("collected metric %q { %s} is not a %s", name, &f.Metrics()[0], first))
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
	ix.noteChange(old, new)
	if old != nil {
		for _, f := range old.Families {
			if new == nil || new.Families.Get(f.Name()) != f {
				ix.remove(old.Key, f.Name(), f)
			}
		}
	}
	if new != nil {
		for _, f := range new.Families {
			if old == nil || old.Families.Get(f.Name()) != f {
				ix.enter(new.Key, f.Name(), f)
			}
		}
	}
}

// liveType returns a type of the stored families named name, ignoring the
// one held by group skipKey, and whether there is any. Group skipKey holds
// at most one family of the name, so only a type held once can vanish by
// skipping it: the group's family is looked up only then.
func (ix *index) liveType(name, skipKey string) (dto.MetricType, bool) {
	e := ix.names[name]
	if e == nil {
		return 0, false
	}
	var best dto.MetricType
	found, looked := false, false
	skipType, skipping := dto.MetricType(0), false
	for t, n := range e.types {
		if n == 1 {
			if !looked {
				if f := ix.family(skipKey, name); f != nil {
					skipType, skipping = f.Type(), true
				}
				looked = true
			}
			if skipping && t == skipType {
				n--
			}
		}
		if n > 0 && (!found || t < best) {
			best, found = t, true
		}
	}
	return best, found
}
