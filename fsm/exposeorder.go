package fsm

import (
	"cmp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	dto "github.com/prometheus/client_model/go"
)

// The exposition order of one family name across groups (nameEntry's sorted
// metrics and the changes pending since the last exposition). Apply only
// records changes; a scrape settles them, paying for what changed, not for a
// full sort. The consistency index, which shares nameEntry, is in index.go.

// sortedMetric is one metric of a family name with the group it belongs to.
type sortedMetric struct {
	m   *Metric
	key string
}

// compareLabels orders metrics like client_golang's MetricSorter: by
// number of labels, then label values in order. (Timestamps are never
// stored.)
func compareLabels(a, b []*dto.LabelPair) int {
	if len(a) != len(b) {
		return cmp.Compare(len(a), len(b))
	}
	for i, lp := range a {
		if c := strings.Compare(lp.GetValue(), b[i].GetValue()); c != 0 {
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
	if c := compareLabels(a.m.labels, b.m.labels); c != 0 {
		return c
	}
	return strings.Compare(a.key, b.key)
}

// orderKey is the start of a metric's order (see compareLabels) at hand:
// its number of labels and the first 8 bytes of its label values joined by
// zero bytes, big-endian and padded with zeros. Without zero bytes in the
// values, two such prefixes that differ order the metrics as compareLabels
// does (a value that ends meets a separator or padding, below any byte of
// a longer one); a metric with a zero byte in a value within reach gets no
// prefix (exact false) and is always compared in full.
type orderKey struct {
	labels int32
	exact  bool
	prefix uint64
}

func newOrderKey(m *Metric) orderKey {
	k := orderKey{labels: int32(len(m.labels)), exact: true}
	n := 0
	for i, lp := range m.labels {
		if n == 8 {
			break
		}
		if i > 0 {
			k.prefix, n = k.prefix<<8, n+1 // separator
		}
		v := lp.GetValue()
		for j := 0; j < len(v) && n < 8; j++ {
			if v[j] == 0 {
				k.exact = false
			}
			k.prefix, n = k.prefix<<8|uint64(v[j]), n+1
		}
	}
	k.prefix <<= 8 * (8 - n)
	return k
}

// compare orders two keys as compareLabels orders their metrics, or
// returns 0 when only the metrics can tell.
func (k orderKey) compare(o orderKey) int {
	if k.labels != o.labels {
		return cmp.Compare(k.labels, o.labels)
	}
	if k.prefix != o.prefix && k.exact && o.exact {
		return cmp.Compare(k.prefix, o.prefix)
	}
	return 0
}

// orderedMetric is a metric in a name's exposition order with its order
// key: most comparisons of a binary search among 100,000 metrics are
// decided without following the metrics' label pointers.
type orderedMetric struct {
	orderKey
	sortedMetric
}

// compareOrdered is compareExposed, deciding by the order keys first.
func compareOrdered(a, b orderedMetric) int {
	if c := a.orderKey.compare(b.orderKey); c != 0 {
		return c
	}
	return compareExposed(a.sortedMetric, b.sortedMetric)
}

// prefixedMetric is a metric being sorted with its order key and its
// position before sorting.
type prefixedMetric struct {
	ord int32 // position before sorting: equal metrics keep their order
	orderedMetric
}

func newPrefixedMetric(sm sortedMetric, ord int) prefixedMetric {
	return prefixedMetric{ord: int32(ord), orderedMetric: orderedMetric{newOrderKey(sm.m), sm}}
}

// comparePrefixed is compareOrdered, then the order before sorting (a
// total order, so an unstable sort gives the stable result).
func comparePrefixed(a, b prefixedMetric) int {
	if c := compareOrdered(a.orderedMetric, b.orderedMetric); c != 0 {
		return c
	}
	return cmp.Compare(a.ord, b.ord)
}

// find returns the position of metric m of group key in sorted, or -1.
func (e *nameEntry) find(m *Metric, key string) int {
	om := orderedMetric{newOrderKey(m), sortedMetric{m: m, key: key}}
	i := sort.Search(len(e.sorted), func(i int) bool { return compareOrdered(e.sorted[i], om) >= 0 })
	for ; i < len(e.sorted) && compareOrdered(e.sorted[i], om) == 0; i++ {
		if e.sorted[i].m == m {
			return i
		}
	}
	return -1
}

// sameLabels reports whether two metric lists have the same label pairs,
// pairwise and in order. Equal pointers are equal pairs: the metrics of a
// push to a group share most pairs with those they replace (interned, or
// the group's own: groupingPairsOf), and reading a pair costs a cache miss.
func sameLabels(a, b []Metric) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		la, lb := a[i].labels, b[i].labels
		if len(la) != len(lb) {
			return false
		}
		for j := range la {
			if la[j] != lb[j] && (la[j].GetName() != lb[j].GetName() || la[j].GetValue() != lb[j].GetValue()) {
				return false
			}
		}
	}
	return true
}

// pendingChanges are changes to a name's exposition order, taken from its
// entry to be settled: the metrics to take out (remove) and to put in
// (add), by group key.
type pendingChanges struct {
	remove, add map[string][]Metric
}

// takePending returns the changes pending in the entry and leaves it none,
// so that Apply records the next changes beside the ones being settled.
// Callers hold the state machine's lock (Apply records changes under it)
// and exposeMu (the spare maps are the settler's).
func (e *nameEntry) takePending() pendingChanges {
	p := pendingChanges{remove: e.pendingRemove, add: e.pendingAdd}
	e.pendingRemove, e.pendingAdd = e.spareRemove, e.spareAdd
	e.spareRemove, e.spareAdd = nil, nil
	if e.pendingRemove == nil {
		e.pendingRemove, e.pendingAdd = map[string][]Metric{}, map[string][]Metric{}
	}
	return p
}

// settle applies changes p, taken from the entry, to the ordered list. The
// result is the same however the changes are batched: the order is a
// function of the stored metrics and their group keys alone. Callers hold
// exposeMu, not the state machine's lock: Apply does not read the order.
//
//   - A group whose new metrics have the same labels as its old ones (a
//     push that changes values only, the usual case) keeps their places:
//     found by binary search, replaced in place.
//   - Other removed metrics are found by binary search when they are few,
//     then the list is compacted in one pass; many are filtered by key.
//   - Added metrics are sorted among themselves, then merged into the
//     list in one backward pass that finds their places by binary search.
func (e *nameEntry) settle(p pendingChanges) {
	// Emptied maps keep their size: after a fill or a restore that would
	// be a slot for every group, twice, for good. Smaller ones are kept
	// for the next changes.
	keep := len(p.add)+len(p.remove) <= shrinkPending
	for key, old := range p.remove {
		added, ok := p.add[key]
		if !ok || !sameLabels(old, added) {
			continue
		}
		pos := make([]int, len(old))
		found := true
		for i := range old {
			if pos[i] = e.find(&old[i], key); pos[i] < 0 {
				found = false
				break
			}
		}
		if !found {
			continue
		}
		for i, at := range pos {
			e.sorted[at].m = &added[i]
			e.metrics[at] = &added[i]
		}
		delete(p.remove, key)
		delete(p.add, key)
	}
	if len(p.remove) > 0 {
		e.removePending(p.remove)
	}
	if len(p.add) > 0 {
		e.mergePending(p.add)
	}
	if keep {
		e.spareRemove, e.spareAdd = p.remove, p.add
	}
}

// shrinkPending is the number of pending groups above which settle drops
// the maps of pending changes once it emptied them.
const shrinkPending = 1024

// parallelSettle is the number of pending metrics from which settleEach
// orders the names on every core.
const parallelSettle = 20000

// settleAll takes and settles the changes of every name (a restored state,
// before it is swapped in).
func (ix *index) settleAll() {
	var entries []*nameEntry
	var changes []pendingChanges
	for _, e := range ix.names {
		if len(e.pendingAdd)+len(e.pendingRemove) == 0 {
			continue
		}
		entries = append(entries, e)
		changes = append(changes, e.takePending())
	}
	settleEach(entries, changes)
}

// settleEach settles changes[i] into entries[i], the names in parallel
// when there are many changes (a restored or freshly filled store:
// ordering a million metrics takes seconds of one core). Names are
// independent and each settles to the same order however its changes are
// batched, so the result is the one of settling them one by one.
func settleEach(entries []*nameEntry, changes []pendingChanges) {
	pending := 0
	for _, p := range changes {
		for _, ms := range p.add {
			pending += len(ms)
		}
	}
	forEach(len(entries), pending >= parallelSettle, func(i int) { entries[i].settle(changes[i]) })
}

// forEach calls f for 0 to n-1, on every core when parallel is set (the
// calls must be independent). httpapi has the same helper: fsm imports
// nothing of ours.
func forEach(n int, parallel bool, f func(int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if !parallel || workers < 2 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				f(int(i))
			}
		})
	}
	wg.Wait()
}

// removePending takes the metrics of remove, by group key, out of sorted
// and empties remove.
func (e *nameEntry) removePending(remove map[string][]Metric) {
	removed := 0
	for _, ms := range remove {
		removed += len(ms)
	}
	if removed == 0 {
		// Only families without metrics went: nothing in sorted is
		// theirs. (Taking positions of none, below, would read pos[0].)
		clear(remove)
		return
	}
	var pos []int
	if removed*16 < len(e.sorted) {
		pos = make([]int, 0, removed)
		for key, ms := range remove {
			for i := range ms {
				p := e.find(&ms[i], key)
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
			copy(e.metrics[w:], e.metrics[p+1:end])
			w += copy(e.sorted[w:], e.sorted[p+1:end])
		}
		clear(e.sorted[w:])
		clear(e.metrics[w:])
		e.sorted, e.metrics = e.sorted[:w], e.metrics[:w]
	} else {
		kept := e.sorted[:0]
		for _, sm := range e.sorted {
			if _, gone := remove[sm.key]; !gone {
				kept = append(kept, sm)
			}
		}
		clear(e.sorted[len(kept):])
		e.sorted = kept
		for i, sm := range kept {
			e.metrics[i] = sm.m
		}
		clear(e.metrics[len(kept):])
		e.metrics = e.metrics[:len(kept)]
	}
	clear(remove)
}

// mergePending sorts the metrics of add, by group key, merges them into
// sorted and empties add.
func (e *nameEntry) mergePending(add map[string][]Metric) {
	n := 0
	keys := make([]string, 0, len(add))
	for k, ms := range add {
		keys = append(keys, k)
		n += len(ms)
	}
	sort.Strings(keys)
	keyed := make([]prefixedMetric, 0, n)
	for _, k := range keys {
		ms := add[k]
		for i := range ms {
			keyed = append(keyed, newPrefixedMetric(sortedMetric{m: &ms[i], key: k}, len(keyed)))
		}
	}
	clear(add)
	sortPrefixed(keyed)
	// Merge from the back: sorted grows by len(keyed). Each added metric
	// finds its place among the originals not yet moved by binary search
	// (after the equal ones), and the originals behind it move up in one
	// copy: comparisons grow with the changes (k log n), not with the
	// list, which is only moved. (An empty list just takes them.)
	//
	// The lists grow in place when they have room and into new lists of
	// their exact length otherwise, the merge moving the originals across:
	// append's growth left a quarter or more of every name's lists unused
	// for good (17 MB at 100,000 groups, a twentieth of the stored state).
	src, srcMetrics := e.sorted, e.metrics
	hi, n := len(src), len(src)+len(keyed)
	grown := n > cap(e.sorted) || n > cap(e.metrics)
	if grown {
		e.sorted, e.metrics = make([]orderedMetric, n), make([]*Metric, n)
	} else {
		e.sorted, e.metrics = e.sorted[:n], e.metrics[:n]
	}
	for j := len(keyed) - 1; j >= 0; j-- {
		a := keyed[j].orderedMetric
		p := sort.Search(hi, func(x int) bool { return compareOrdered(a, src[x]) < 0 })
		copy(e.sorted[p+j+1:], src[p:hi])
		copy(e.metrics[p+j+1:], srcMetrics[p:hi])
		e.sorted[p+j] = a
		e.metrics[p+j] = a.m
		hi = p
	}
	if grown {
		copy(e.sorted, src[:hi])
		copy(e.metrics, srcMetrics[:hi])
	}
}

// sortPrefixed sorts metrics into exposition order, those that compare
// equal in the order they are given (by ord). What decides most
// comparisons is copied next to each metric (its number of labels and the
// first bytes of its label values), so comparing two of them rarely
// reaches into the metrics themselves: ordering the million metrics of a
// restored store is bound by memory latency otherwise.
func sortPrefixed(keyed []prefixedMetric) {
	slices.SortFunc(keyed, comparePrefixed)
}

// orderRestored orders the metrics of a restored name, given with their
// order keys and group keys in increasing key order and each family's
// metrics in its order, into an empty entry: the order settle gives the
// same metrics pending (it sorts the pending keys and numbers the metrics
// alike), without a map of pending changes in between.
func (e *nameEntry) orderRestored(ms []orderedMetric) {
	keyed := make([]prefixedMetric, len(ms))
	for i, om := range ms {
		keyed[i] = prefixedMetric{ord: int32(i), orderedMetric: om}
	}
	sortPrefixed(keyed)
	e.sorted = make([]orderedMetric, len(keyed))
	e.metrics = make([]*Metric, len(keyed))
	for i, k := range keyed {
		e.sorted[i] = k.orderedMetric
		e.metrics[i] = k.m
	}
}
