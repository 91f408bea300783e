package httpapi

import (
	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// Compressed scrapes. Prometheus always asks for gzip, and compressing a
// large exposition on every scrape is most of what the scrape costs. So
// every segment of an encoded family (renderfamily.go) also keeps its bytes
// compressed, as one DEFLATE piece (gzipstream.go), and a scrape joins the
// pieces into one gzip member; after a push only the segments that changed
// are compressed: a segment is shared by the versions of its family that
// hold its metrics, and its piece with it.

// parallelGzipBytes is the number of bytes to compress from which several
// families are compressed at once.
const parallelGzipBytes = 1 << 20

// gzipped returns rf's bytes as compressed pieces: the head, every segment
// (compressed once, kept with the segment; a segment rendered compressed
// only was compressed as it was made) and the tail. The caller holds the
// format cache's lock.
func (rf *renderedFamily) gzipped() ([]deflated, error) {
	if rf.gz != nil {
		return rf.gz, nil
	}
	gz := make([]deflated, 0, len(rf.segs)+2)
	head, err := deflate(rf.head)
	if err != nil {
		return nil, err
	}
	gz = append(gz, head)
	for _, s := range rf.segs {
		if s.gz == nil {
			piece, err := deflate(s.data)
			if err != nil {
				return nil, err
			}
			s.gz = &piece
		}
		gz = append(gz, *s.gz)
	}
	if len(rf.tail) > 0 {
		tail, err := deflate(rf.tail)
		if err != nil {
			return nil, err
		}
		gz = append(gz, tail)
	}
	rf.gz = gz
	return gz, nil
}

// compressedBytes is how many bytes gzipped has to compress.
func (rf *renderedFamily) compressedBytes() int {
	n := len(rf.head) + len(rf.tail)
	for _, s := range rf.segs {
		if s.gz == nil {
			n += len(s.data)
		}
	}
	return n
}

// prepareGzip brings the encoded families up to date with pushed, as
// prepare does, and returns each family's compressed pieces in the same
// order.
// Families are compressed in parallel when there is much to compress.
// With plain unset the families are rendered compressed only.
func (fc *formatCache) prepareGzip(pushed []*fsm.ExposedFamily, plain bool) ([][]deflated, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if _, err := fc.prepareLocked(pushed, plain); err != nil {
		return nil, err
	}
	out := make([][]deflated, len(pushed))
	errs := make([]error, len(pushed))
	var todo []int
	work := 0
	for i, ef := range pushed {
		rf := fc.families[ef.Name()]
		if rf.gz != nil {
			out[i] = rf.gz
			continue
		}
		todo = append(todo, i)
		work += rf.compressedBytes()
	}
	compress := func(k int) {
		i := todo[k]
		out[i], errs[i] = fc.families[pushed[i].Name()].gzipped()
	}
	forEach(len(todo), work >= parallelGzipBytes, compress)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
