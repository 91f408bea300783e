package fsm

import (
	"fmt"
	"runtime"
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

// indexGroups builds the index of restored groups, its maps sized for them.
func indexGroups(groups []*Group) *index {
	perName := map[string]int{}
	series := 0
	for _, g := range groups {
		for name, f := range g.Families {
			perName[name]++
			series += len(f.MF.GetMetric())
		}
	}
	ix := newIndex()
	ix.series = make(map[uint64]int32, series)
	for name, n := range perName {
		ix.names[name] = newNameEntry(n)
	}
	for _, g := range groups {
		ix.replaceGroup(nil, g)
	}
	return ix
}
