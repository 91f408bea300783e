package httpapi

import (
	"hash/maphash"

	dto "github.com/prometheus/client_model/go"
)

// Compressed scrapes. Prometheus always asks for gzip, and compressing a
// large exposition on every scrape is most of what the scrape costs. So
// every encoded family also keeps its bytes compressed, one DEFLATE piece
// per block of metrics (gzipstream.go), and a scrape joins the pieces into
// one gzip member; after a push only the blocks that changed are compressed
// again.
//
// Blocks end where the content says (after a metric whose bytes hash to a
// chosen value, about every gzipBlockMetrics metrics, or at gzipBlockMax
// bytes), so a metric inserted or removed changes its own block and leaves
// the others' boundaries, and their compressed bytes, as they were. A block
// is found again by the hash of its bytes.

const (
	// gzipBlockMetrics is the average number of metrics per block: a power
	// of two.
	gzipBlockMetrics = 128
	// gzipBlockMax ends a block that grew this large without a natural end.
	gzipBlockMax = 256 << 10
	// parallelGzipBytes is the number of bytes to compress from which
	// several families are compressed at once.
	parallelGzipBytes = 1 << 20
)

// blockSeed hashes block contents; any seed works, one per process.
var blockSeed = maphash.MakeSeed()

// gzipFamily is one encoded family as compressed pieces, and each piece by
// the hash of the bytes it holds.
type gzipFamily struct {
	pieces []deflated
	byHash map[uint64]deflated
}

// gzipped returns rf's bytes as compressed pieces, compressing the blocks
// that the previous version's pieces (rf.prevGz) do not hold. The caller
// holds the format cache's lock.
func (rf *renderedFamily) gzipped() ([]deflated, error) {
	if rf.gz != nil {
		return rf.gz.pieces, nil
	}
	var prev map[uint64]deflated
	if rf.prevGz != nil {
		prev = rf.prevGz.byHash
	}
	blocks := rf.blocks()
	gz := &gzipFamily{pieces: make([]deflated, 0, len(blocks)), byHash: make(map[uint64]deflated, len(blocks))}
	for _, b := range blocks {
		piece, ok := gz.byHash[b.hash]
		if !ok {
			if piece, ok = prev[b.hash]; !ok || piece.n != len(b.data) {
				var err error
				if piece, err = deflate(b.data); err != nil {
					return nil, err
				}
			}
			gz.byHash[b.hash] = piece
		}
		gz.pieces = append(gz.pieces, piece)
	}
	rf.gz, rf.prevGz = gz, nil
	return gz.pieces, nil
}

// block is a run of a family's bytes and a hash of them, made from the
// hashes of its metrics (each metric's bytes are hashed once, for the
// block's end and its identity).
type block struct {
	data []byte
	hash uint64
}

// blocks cuts rf's bytes into blocks at metric boundaries: the family's
// header goes with its first metrics.
func (rf *renderedFamily) blocks() []block {
	all := rf.bytes()
	base := uint32(rf.start)
	var out []block
	from := uint32(rf.start)
	h := maphash.Bytes(blockSeed, rf.buf[rf.start:rf.first])
	for i, end := range rf.ends {
		c := maphash.Bytes(blockSeed, rf.chunk(i))
		h = (h ^ c) * 0x9e3779b97f4a7c15
		if end-from >= gzipBlockMax || c%gzipBlockMetrics == gzipBlockMetrics-1 {
			out = append(out, block{all[from-base : end-base], h})
			from, h = end, 0
		}
	}
	if tail := all[from-base:]; len(tail) > 0 || len(out) == 0 {
		// After the last metric: the unit field of a delimited protobuf
		// family.
		last := rf.first
		if len(rf.ends) > 0 {
			last = rf.ends[len(rf.ends)-1]
		}
		out = append(out, block{tail, h ^ maphash.Bytes(blockSeed, rf.buf[last:])})
	}
	return out
}

// prepareGzip brings the encoded families up to date with pushed, as
// prepare does, and returns each family's compressed pieces in the same
// order.
// Families are compressed in parallel when there is much to compress.
func (fc *formatCache) prepareGzip(pushed []*dto.MetricFamily) ([][]deflated, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if _, err := fc.prepareLocked(pushed); err != nil {
		return nil, err
	}
	out := make([][]deflated, len(pushed))
	errs := make([]error, len(pushed))
	var todo []int
	work := 0
	for i, mf := range pushed {
		rf := fc.families[mf.GetName()]
		if rf.gz != nil {
			out[i] = rf.gz.pieces
			continue
		}
		todo = append(todo, i)
		work += len(rf.bytes())
	}
	compress := func(k int) {
		i := todo[k]
		out[i], errs[i] = fc.families[pushed[i].GetName()].gzipped()
	}
	forEach(len(todo), work >= parallelGzipBytes, compress)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
