package fsm

import (
	"cmp"
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
	// groups maps the key of every group holding a family of this name to
	// that family.
	groups map[string]*Family
	// types counts those families by type. With the consistency check on
	// there is only ever one type; with it off there may be several.
	types map[dto.MetricType]int
	// sorted holds the metrics of all these families in exposition order
	// as of the last exposition; changes since then wait in pendingRemove
	// (the metrics to take out, by group key) and pendingAdd (the metrics
	// to put in, by group key), so Apply stays O(1) per family and a
	// scrape pays for what changed, not for a full sort. The family in
	// groups[key] is either in sorted or in pendingAdd[key].
	sorted        []sortedMetric
	pendingRemove map[string][]*dto.Metric
	pendingAdd    map[string][]*dto.Metric
	// minKey is a lower bound of the keys in groups, and their minimum
	// whenever groups holds it (the help and type of the exposition come
	// from that group's family).
	minKey string
	// merged caches the exposition of this name across groups; nil when
	// it must be rebuilt.
	merged *dto.MetricFamily
}

// sortedMetric is one metric of a family name with the group it belongs to.
type sortedMetric struct {
	m   *dto.Metric
	key string
}

// compareLabels orders metrics like client_golang's MetricSorter: by
// number of labels, then label values in order. (Timestamps are never
// stored.)
func compareLabels(a, b *dto.Metric) int {
	if len(a.Label) != len(b.Label) {
		return cmp.Compare(len(a.Label), len(b.Label))
	}
	for i, lp := range a.Label {
		if c := strings.Compare(lp.GetValue(), b.Label[i].GetValue()); c != 0 {
			return c
		}
	}
	return 0
}

// compareExposed orders metrics of one name across groups: client_golang's
// order by label values, ties broken by grouping key. Metrics equal in
// both belong to one family (duplicate series, only stored unchecked) and
// keep that family's order: every sort of them is stable.
func compareExposed(a, b sortedMetric) int {
	if c := compareLabels(a.m, b.m); c != 0 {
		return c
	}
	return strings.Compare(a.key, b.key)
}

// find returns the position of metric m of group key in sorted, or -1.
func (e *nameEntry) find(m *dto.Metric, key string) int {
	sm := sortedMetric{m: m, key: key}
	i := sort.Search(len(e.sorted), func(i int) bool { return compareExposed(e.sorted[i], sm) >= 0 })
	for ; i < len(e.sorted) && compareExposed(e.sorted[i], sm) == 0; i++ {
		if e.sorted[i].m == m {
			return i
		}
	}
	return -1
}

// sameLabels reports whether two metric lists have the same label pairs,
// pairwise and in order.
func sameLabels(a, b []*dto.Metric) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		la, lb := a[i].GetLabel(), b[i].GetLabel()
		if len(la) != len(lb) {
			return false
		}
		for j := range la {
			if la[j].GetName() != lb[j].GetName() || la[j].GetValue() != lb[j].GetValue() {
				return false
			}
		}
	}
	return true
}

// settle applies the pending changes to the ordered list. The result is
// the same however the changes are batched: the order is a function of
// the stored metrics and their group keys alone.
//
//   - A group whose new metrics have the same labels as its old ones (a
//     push that changes values only, the usual case) keeps their places:
//     found by binary search, replaced in place.
//   - Other removed metrics are found by binary search when they are few,
//     then the list is compacted in one pass; many are filtered by key.
//   - Added metrics are sorted among themselves, then merged into the
//     list in one backward pass.
func (e *nameEntry) settle() {
	for key, old := range e.pendingRemove {
		added, ok := e.pendingAdd[key]
		if !ok || !sameLabels(old, added) {
			continue
		}
		pos := make([]int, len(old))
		found := true
		for i, m := range old {
			if pos[i] = e.find(m, key); pos[i] < 0 {
				found = false
				break
			}
		}
		if !found {
			continue
		}
		for i, p := range pos {
			e.sorted[p].m = added[i]
		}
		delete(e.pendingRemove, key)
		delete(e.pendingAdd, key)
	}
	if len(e.pendingRemove) > 0 {
		e.removePending()
	}
	if len(e.pendingAdd) > 0 {
		e.mergePending()
	}
}

// removePending takes the metrics of pendingRemove out of sorted.
func (e *nameEntry) removePending() {
	removed := 0
	for _, ms := range e.pendingRemove {
		removed += len(ms)
	}
	var pos []int
	if removed*16 < len(e.sorted) {
		pos = make([]int, 0, removed)
		for key, ms := range e.pendingRemove {
			for _, m := range ms {
				p := e.find(m, key)
				if p < 0 {
					pos = nil
					break
				}
				pos = append(pos, p)
			}
			if pos == nil {
				break
			}
		}
	}
	if pos != nil {
		slices.Sort(pos)
		w := pos[0]
		for i, p := range pos {
			end := len(e.sorted)
			if i+1 < len(pos) {
				end = pos[i+1]
			}
			w += copy(e.sorted[w:], e.sorted[p+1:end])
		}
		clear(e.sorted[w:])
		e.sorted = e.sorted[:w]
	} else {
		kept := e.sorted[:0]
		for _, sm := range e.sorted {
			if _, gone := e.pendingRemove[sm.key]; !gone {
				kept = append(kept, sm)
			}
		}
		clear(e.sorted[len(kept):])
		e.sorted = kept
	}
	clear(e.pendingRemove)
}

// mergePending sorts the metrics of pendingAdd and merges them into sorted.
func (e *nameEntry) mergePending() {
	n := 0
	keys := make([]string, 0, len(e.pendingAdd))
	for k, ms := range e.pendingAdd {
		keys = append(keys, k)
		n += len(ms)
	}
	sort.Strings(keys)
	added := make([]sortedMetric, 0, n)
	for _, k := range keys {
		for _, m := range e.pendingAdd[k] {
			added = append(added, sortedMetric{m: m, key: k})
		}
	}
	clear(e.pendingAdd)
	slices.SortStableFunc(added, compareExposed)
	if len(e.sorted) == 0 {
		e.sorted = added
		return
	}
	// Merge from the back, in place: sorted grows by len(added).
	i, j := len(e.sorted)-1, len(added)-1
	e.sorted = slices.Grow(e.sorted, len(added))[:len(e.sorted)+len(added)]
	for k := len(e.sorted) - 1; j >= 0; k-- {
		if i >= 0 && compareExposed(added[j], e.sorted[i]) < 0 {
			e.sorted[k] = e.sorted[i]
			i--
		} else {
			e.sorted[k] = added[j]
			j--
		}
	}
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
		e = &nameEntry{groups: map[string]*Family{}, types: map[dto.MetricType]int{}, pendingRemove: map[string][]*dto.Metric{}, pendingAdd: map[string][]*dto.Metric{}}
		ix.names[name] = e
	}
	e.groups[key] = f
	e.pendingAdd[key] = f.MF.GetMetric()
	if len(e.groups) == 1 || key < e.minKey {
		e.minKey = key
	}
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
	if _, pending := e.pendingAdd[key]; pending {
		// f is not in sorted yet (and what was is already recorded).
		delete(e.pendingAdd, key)
	} else {
		e.pendingRemove[key] = f.MF.GetMetric()
	}
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
	names := slices.Sorted(maps.Keys(ix.mixed))
	for _, name := range names {
		e := ix.names[name]
		keys := slices.Sorted(maps.Keys(e.groups))
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
