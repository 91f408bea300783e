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
// metrics). Apply only records which groups changed (orderchanges.go); a
// scrape settles the changes, paying for what changed, not for a full sort.
// The consistency index, which shares nameEntry, is in index.go.

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

// sortKey is a metric being sorted into exposition order: its order key
// and its position in the list being sorted (which breaks ties, so an
// unstable sort gives the stable result). It holds no pointers: a sort
// moves 24 bytes a swap where the metrics with their keys are 40, and
// without the write barriers that moving pointers costs while the
// collector marks (a tenth of a restore's CPU at 100,000 groups).
type sortKey struct {
	orderKey
	ord int32
}

// orderedKeys returns the keys of ms in the exposition order of their
// metrics, those that compare equal in the order they are given. What
// decides most comparisons is copied next to each metric (its number of
// labels and the first bytes of its label values), so comparing two of
// them rarely reaches into the metrics themselves: ordering the million
// metrics of a restored store is bound by memory latency otherwise.
func orderedKeys(ms []orderedMetric) []sortKey {
	keys := make([]sortKey, len(ms))
	for i := range ms {
		keys[i] = sortKey{ms[i].orderKey, int32(i)}
	}
	slices.SortFunc(keys, func(a, b sortKey) int { return compareSortKeys(ms, a, b) })
	return keys
}

// compareSortKeys is compareOrdered of the metrics of ms the keys stand
// for, then their positions in ms: a total order.
func compareSortKeys(ms []orderedMetric, a, b sortKey) int {
	if c := a.orderKey.compare(b.orderKey); c != 0 {
		return c
	}
	if c := compareExposed(ms[a.ord].sortedMetric, ms[b.ord].sortedMetric); c != 0 {
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

// settle applies changes, one per group key and each of this name, to
// the ordered list. The result is the same however the changes are
// batched: the order is a function of the stored metrics and their group
// keys alone. Callers hold exposeMu, not the state machine's lock: Apply
// does not read the order.
//
//   - A group whose new metrics have the same labels as its old ones (a
//     push that changes values only, the usual case) keeps their places:
//     found by binary search, replaced in place.
//   - Other removed metrics are found by binary search when they are few,
//     then the list is compacted in one pass; many are filtered by key.
//   - Added metrics are sorted among themselves, then merged into the
//     list in one backward pass that finds their places by binary search.
func (e *nameEntry) settle(changes []familyChange) {
	rest := changes[:0]
	for _, c := range changes {
		if !e.replaceInPlace(c) {
			rest = append(rest, c)
		}
	}
	e.removeOld(rest)
	e.mergeNew(rest)
	e.settled = true
}

// replaceInPlace puts change c's new metrics in the places of its old ones
// if they have the same labels (and so the same places) and reports
// whether it did.
func (e *nameEntry) replaceInPlace(c familyChange) bool {
	from, to := c.from.Metrics(), c.to.Metrics()
	if len(from) == 0 || !sameLabels(from, to) {
		return false
	}
	pos := make([]int, len(from))
	for i := range from {
		if pos[i] = e.find(&from[i], c.key); pos[i] < 0 {
			return false
		}
	}
	for i, at := range pos {
		e.sorted[at].m = &to[i]
		e.metrics[at] = &to[i]
	}
	return true
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

// removeOld takes the old metrics of changes out of sorted.
func (e *nameEntry) removeOld(changes []familyChange) {
	removed := 0
	for _, c := range changes {
		removed += len(c.from.Metrics())
	}
	if removed == 0 {
		// Only families without metrics went: nothing in sorted is
		// theirs. (Taking positions of none, below, would read pos[0].)
		return
	}
	var pos []int
	if removed*16 < len(e.sorted) {
		pos = make([]int, 0, removed)
		for _, c := range changes {
			ms := c.from.Metrics()
			for i := range ms {
				p := e.find(&ms[i], c.key)
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
		gone := make(map[string]struct{}, len(changes))
		for _, c := range changes {
			if len(c.from.Metrics()) > 0 {
				gone[c.key] = struct{}{}
			}
		}
		kept := e.sorted[:0]
		for _, sm := range e.sorted {
			if _, ok := gone[sm.key]; !ok {
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
}

// mergeNew sorts the new metrics of changes, merges them into sorted
// and sorts changes by group key.
func (e *nameEntry) mergeNew(changes []familyChange) {
	n := 0
	for _, c := range changes {
		n += len(c.to.Metrics())
	}
	if n == 0 {
		return
	}
	slices.SortFunc(changes, func(a, b familyChange) int { return strings.Compare(a.key, b.key) })
	added := make([]orderedMetric, 0, n)
	for _, c := range changes {
		ms := c.to.Metrics()
		for i := range ms {
			added = append(added, orderedMetric{newOrderKey(&ms[i]), sortedMetric{m: &ms[i], key: c.key}})
		}
	}
	keys := orderedKeys(added)
	// Merge from the back: sorted grows by len(added). Each added metric
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
	hi, n := len(src), len(src)+len(keys)
	grown := n > cap(e.sorted) || n > cap(e.metrics)
	if grown {
		e.sorted, e.metrics = make([]orderedMetric, n), make([]*Metric, n)
	} else {
		e.sorted, e.metrics = e.sorted[:n], e.metrics[:n]
	}
	for j := len(keys) - 1; j >= 0; j-- {
		a := added[keys[j].ord]
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

// orderRestored orders the metrics of a restored name, given with their
// order keys and group keys in increasing key order and each family's
// metrics in its order, into an empty entry: the order settle gives the
// same metrics as changes (it sorts the changes by key and numbers the
// metrics alike), without the changed groups' map in between. The entry
// takes ms, put in order in place: a copy was a tenth of what a restore
// allocated.
func (e *nameEntry) orderRestored(ms []orderedMetric) {
	keys := orderedKeys(ms)
	// Position i takes the metric at keys[i].ord, cycle by cycle; a
	// position done points at itself.
	for i := range keys {
		if int(keys[i].ord) == i {
			continue
		}
		first := ms[i]
		for j := i; ; {
			from := int(keys[j].ord)
			keys[j].ord = int32(j)
			if from == i {
				ms[j] = first
				break
			}
			ms[j] = ms[from]
			j = from
		}
	}
	e.sorted = ms
	e.metrics = make([]*Metric, len(ms))
	e.settled = true
	for i := range ms {
		e.metrics[i] = ms[i].m
	}
}
