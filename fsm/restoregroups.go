package fsm

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
)

// Restoring a snapshot at scale: its group records are decoded and checked
// in batches on every core (decoding is pure, so the order of the work does
// not matter; results keep the records' order), and the index is built once
// all groups are known, with its maps sized up front instead of grown
// record by record.

// restoreBatch is how many group records are read before they are decoded
// together. The batch's buffers are reused for the next batch.
const restoreBatch = 1024

// recordBatch holds group records read from a snapshot, not yet decoded.
type recordBatch struct {
	bufs  [][]byte // reused across batches
	n     int      // records in the batch
	first int      // number of the batch's first record, counted from 1
}

// decode decodes and checks the batch's records, in parallel, and returns
// the groups in record order, or the error of the first bad record.
func (b *recordBatch) decode() ([]*Group, error) {
	groups := make([]*Group, b.n)
	errs := make([]error, b.n)
	workers := min(runtime.GOMAXPROCS(0), b.n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.n; i += workers {
				groups[i], errs[i] = decodeRecord(b.bufs[i], b.first+i)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return groups, nil
}

// decodeRecord decodes and checks group record number n.
func decodeRecord(rec []byte, n int) (*Group, error) {
	g, err := decodeGroup(rec)
	if err != nil {
		return nil, fmt.Errorf("%w: group record %d: %v", ErrCorruptSnapshot, n, err)
	}
	if err := ValidateGroup(g); err != nil {
		return nil, fmt.Errorf("%w: group record %d is not a valid group: %v", ErrCorruptSnapshot, n, err)
	}
	return g, nil
}

// indexGroups builds the index of restored groups (byKey holds them by
// key), its maps sized for them, and orders the exposition of every name,
// and returns it with the number of series the groups hold. Groups in
// increasing key order (as snapshots write them) are indexed name by name
// on every core, each name's families straight into its order; only the
// series counts, one set for all names, are entered on one core. Groups in
// any other order go through the pending changes, as Apply adds them, and
// Restore settles them.
func indexGroups(groups []*Group, byKey map[string]*Group) (*index, int) {
	type keyedFamily struct {
		key string
		f   *Family
	}
	type restoring struct {
		e       *nameEntry
		fams    []keyedFamily // in the groups' order
		metrics int
		ms      []sortedMetric
		hashes  []uint64
	}
	perName := map[string]*restoring{}
	series := 0
	for _, g := range groups {
		for _, f := range g.Families {
			name := f.Name()
			r := perName[name]
			if r == nil {
				r = &restoring{}
				perName[name] = r
			}
			r.fams = append(r.fams, keyedFamily{g.Key, f})
			r.metrics += len(f.Metrics())
			series += len(f.Metrics())
		}
	}
	ix := newIndex(byKey)
	ix.series = newHashSet(series)
	names := slices.Sorted(maps.Keys(perName))
	for _, name := range names {
		r := perName[name]
		r.e = newNameEntry()
		ix.names[name] = r.e
	}
	inKeyOrder := true
	for i := 1; i < len(groups) && inKeyOrder; i++ {
		inKeyOrder = groups[i-1].Key < groups[i].Key
	}
	if !inKeyOrder {
		for _, g := range groups {
			ix.replaceGroup(nil, g)
		}
		return ix, series
	}
	// What enter does for every family, name by name: the families of a
	// name in key order, so the first is the smallest key.
	forEach(len(names), series >= parallelSettle, func(i int) {
		name := names[i]
		r := perName[name]
		e := r.e
		e.minKey = r.fams[0].key
		r.ms = make([]sortedMetric, 0, r.metrics)
		r.hashes = make([]uint64, 0, r.metrics)
		for _, kf := range r.fams {
			key, f := kf.key, kf.f
			e.hold(key, f)
			for m := range f.All() {
				r.ms = append(r.ms, sortedMetric{m: m, key: key})
				r.hashes = append(r.hashes, seriesHash(name, m))
			}
		}
		e.version = uint64(len(r.fams))
		e.orderRestored(r.ms)
	})
	for _, name := range names {
		r := perName[name]
		if len(r.e.types) > 1 {
			ix.mixed[name] = struct{}{}
		}
		for _, h := range r.hashes {
			ix.countSeries(name, h)
		}
	}
	return ix, series
}
