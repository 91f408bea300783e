package fsm

import dto "github.com/prometheus/client_model/go"

// decodeScratch is what a restore's decoding goroutine reuses from one
// group record to the next: the lists a record needs only while it is
// decoded (its families' raw messages and times, the interned values its
// counting pass found, its families of another shape), and its cache in
// front of the intern table. Made afresh for every record, these lists were
// about a fifth of what a restore allocated (BenchmarkRestore), garbage
// the collector had to find in a heap growing to the restored state.
//
// A nil *decodeScratch makes fresh lists and interns through the table.
// One goroutine uses it, one record at a time.
type decodeScratch struct {
	cache         *internCache
	times         []int64
	raws          [][]byte
	internedStrs  []*string
	internedPairs []*dto.LabelPair
	slow          []*dto.MetricFamily
}

func newDecodeScratch() *decodeScratch {
	return &decodeScratch{cache: newInternCache()}
}

// internCache returns the goroutine's cache (nil: the table itself).
func (sc *decodeScratch) internCache() *internCache {
	if sc == nil {
		return nil
	}
	return sc.cache
}

// familyLists returns empty lists for a record's family times and raw
// messages.
func (sc *decodeScratch) familyLists() ([]int64, [][]byte) {
	if sc == nil {
		return nil, nil
	}
	return sc.times[:0], sc.raws[:0]
}

// keepFamilyLists takes back the lists familyLists gave, grown.
func (sc *decodeScratch) keepFamilyLists(times []int64, raws [][]byte) {
	if sc != nil {
		sc.times, sc.raws = times, raws
	}
}

// internedLists returns empty lists for the interned values of n families'
// counting pass.
func (sc *decodeScratch) internedLists(n int) ([]*string, []*dto.LabelPair) {
	if sc == nil || cap(sc.internedStrs) < 2*n {
		return make([]*string, 0, 2*n), make([]*dto.LabelPair, 0, 2*n)
	}
	return sc.internedStrs[:0], sc.internedPairs[:0]
}

// keepInternedLists takes back the lists internedLists gave, grown.
func (sc *decodeScratch) keepInternedLists(strs []*string, pairs []*dto.LabelPair) {
	if sc != nil {
		sc.internedStrs, sc.internedPairs = strs, pairs
	}
}

// slowList returns n empty slots for the families of n that are decoded by
// proto.
func (sc *decodeScratch) slowList(n int) []*dto.MetricFamily {
	if sc == nil {
		return make([]*dto.MetricFamily, n)
	}
	if cap(sc.slow) < n {
		sc.slow = make([]*dto.MetricFamily, n)
	}
	sc.slow = sc.slow[:n]
	clear(sc.slow)
	return sc.slow
}
