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
// together. The batch's buffers are reused for the next batch but one.
const restoreBatch = 1024

// recordBatch holds group records read from a snapshot, not yet decoded.
type recordBatch struct {
	bufs  [][]byte // reused across batches
	n     int      // records in the batch
	first int      // number of the batch's first record, counted from 1
}

// decode decodes and checks the batch's records, in parallel, and returns
// the groups in record order with their metrics' keys, or the error of the
// first bad record.
func (b *recordBatch) decode() ([]*Group, [][]metricKeys, error) {
	groups := make([]*Group, b.n)
	keys := make([][]metricKeys, b.n)
	errs := make([]error, b.n)
	workers := min(runtime.GOMAXPROCS(0), b.n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := newDecodeScratch()
			for i := w; i < b.n; i += workers {
				if groups[i], errs[i] = decodeRecord(b.bufs[i], b.first+i, sc); errs[i] == nil {
					keys[i] = keysOf(groups[i])
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return groups, keys, nil
}

// metricKeys is what the index and the exposition order need of a restored
// metric: its series hash and its order key. They are computed while the
// metric's group is decoded, its labels still in the cache; computed when
// the index is built, name by name, each followed the metric's label
// pointers into memory long since evicted (a fifth of a restart's CPU at
// 100,000 groups).
type metricKeys struct {
	hash  uint64
	order orderKey
}

// keysOf returns the keys of g's metrics, family by family, in order.
func keysOf(g *Group) []metricKeys {
	n := 0
	for _, f := range g.Families {
		n += len(f.Metrics())
	}
	keys := make([]metricKeys, 0, n)
	for _, f := range g.Families {
		name := f.Name()
		for m := range f.All() {
			keys = append(keys, metricKeys{hash: seriesHash(name, m), order: newOrderKey(m)})
		}
	}
	return keys
}

// groupDecoder decodes a snapshot's group records as they are read: a full
// batch is decoded on every core while the next one is read into a second
// batch, so reading (and the snapshot's CRC) overlaps the decoding instead
// of alternating with it.
type groupDecoder struct {
	batches [2]recordBatch
	filling int               // index of the batch being read into
	pending chan decodedBatch // the batch being decoded, if any
	groups  []*Group          // decoded, in record order
	keys    [][]metricKeys    // the groups' metrics' keys
}

// decodedBatch is what a batch's decoding returned.
type decodedBatch struct {
	groups []*Group
	keys   [][]metricKeys
	err    error
}

func newGroupDecoder() *groupDecoder {
	d := &groupDecoder{}
	for i := range d.batches {
		d.batches[i].bufs = make([][]byte, restoreBatch)
	}
	d.batches[0].first = 1
	return d
}

// slot returns the buffer to read the next record into (to be handed back
// to added) and that record's number, counted from 1.
func (d *groupDecoder) slot() ([]byte, int) {
	b := &d.batches[d.filling]
	return b.bufs[b.n], b.first + b.n
}

// added takes the record read into the last slot; a full batch goes to
// the decoders, after the one before it has been decoded.
func (d *groupDecoder) added(rec []byte) error {
	b := &d.batches[d.filling]
	b.bufs[b.n] = rec
	if b.n++; b.n == restoreBatch {
		return d.flush()
	}
	return nil
}

// flush waits for the batch being decoded and starts decoding the one
// being read into; the other batch is read into next.
func (d *groupDecoder) flush() error {
	if err := d.wait(); err != nil {
		return err
	}
	b := &d.batches[d.filling]
	next := &d.batches[1-d.filling]
	next.first, next.n = b.first+b.n, 0
	if b.n > 0 {
		done := make(chan decodedBatch, 1)
		go func() {
			gs, keys, err := b.decode()
			done <- decodedBatch{gs, keys, err}
		}()
		d.pending = done
	}
	d.filling = 1 - d.filling
	return nil
}

// wait waits for the batch being decoded, if any, and keeps its groups.
func (d *groupDecoder) wait() error {
	if d.pending == nil {
		return nil
	}
	r := <-d.pending
	d.pending = nil
	if r.err != nil {
		return r.err
	}
	d.groups = append(d.groups, r.groups...)
	d.keys = append(d.keys, r.keys...)
	return nil
}

// finish decodes what is left and returns every group in record order with
// its metrics' keys, or the error of the first bad record.
func (d *groupDecoder) finish() ([]*Group, [][]metricKeys, error) {
	if err := d.flush(); err != nil {
		return nil, nil, err
	}
	if err := d.wait(); err != nil {
		return nil, nil, err
	}
	return d.groups, d.keys, nil
}

// read returns the number of records read so far.
func (d *groupDecoder) read() int {
	b := &d.batches[d.filling]
	return b.first + b.n - 1
}

// decodeRecord decodes and checks group record number n with the decoding
// goroutine's scratch.
func decodeRecord(rec []byte, n int, sc *decodeScratch) (*Group, error) {
	g, err := decodeGroup(rec, sc)
	if err != nil {
		return nil, fmt.Errorf("%w: group record %d: %v", ErrCorruptSnapshot, n, err)
	}
	if err := ValidateGroup(g); err != nil {
		return nil, fmt.Errorf("%w: group record %d is not a valid group: %v", ErrCorruptSnapshot, n, err)
	}
	return g, nil
}

// indexGroups builds the index of restored groups (byKey holds them by
// key; keys holds each group's metrics' keys, keysOf), its maps sized for
// them, and orders the exposition of every name, and returns it with the
// number of series the groups hold. Groups in increasing key order (as
// snapshots write them) are indexed name by name on every core, each
// name's families straight into its order; only the series counts, one
// set for all names, are entered on one core. Groups in any other order go
// through the changed groups, as Apply adds them, and Restore settles
// them.
func indexGroups(groups []*Group, keys [][]metricKeys, byKey map[string]*Group) (*index, int) {
	type keyedFamily struct {
		key  string
		f    *Family
		keys []metricKeys // of f's metrics
	}
	type restoring struct {
		e        *nameEntry
		families int           // counted before fams is filled
		fams     []keyedFamily // in the groups' order
		metrics  int
		ms       []orderedMetric
	}
	// One walk counts each name's families and metrics, so the second
	// fills lists of their exact length: grown by append, a name's list of
	// 100,000 families was copied over and over (a fifth of a restore's
	// time on one core).
	perName := map[string]*restoring{}
	series := 0
	for _, g := range groups {
		for _, f := range g.Families {
			r := perName[f.Name()]
			if r == nil {
				r = &restoring{}
				perName[f.Name()] = r
			}
			r.families++
			n := len(f.Metrics())
			r.metrics += n
			series += n
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
	for _, r := range perName {
		r.fams = make([]keyedFamily, 0, r.families)
	}
	for gi, g := range groups {
		gk := keys[gi]
		for _, f := range g.Families {
			r := perName[f.Name()]
			n := len(f.Metrics())
			r.fams = append(r.fams, keyedFamily{g.Key, f, gk[:n:n]})
			gk = gk[n:]
		}
	}
	// What enter does for every family, name by name: the families of a
	// name in key order, so the first is the smallest key.
	forEach(len(names), series >= parallelSettle, func(i int) {
		name := names[i]
		r := perName[name]
		e := r.e
		e.minKey = r.fams[0].key
		r.ms = make([]orderedMetric, 0, r.metrics)
		for _, kf := range r.fams {
			key, f := kf.key, kf.f
			e.hold(key, f)
			ms := f.Metrics()
			for i := range ms {
				r.ms = append(r.ms, orderedMetric{kf.keys[i].order, sortedMetric{m: &ms[i], key: key}})
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
		for _, kf := range r.fams {
			for _, k := range kf.keys {
				ix.countSeries(name, k.hash)
			}
		}
	}
	return ix, series
}
