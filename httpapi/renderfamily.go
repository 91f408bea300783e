package httpapi

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"slices"

	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// One family encoded in one format, in segments.
//
// A family's metrics are encoded into segments of about segmentMetrics
// metrics each. A segment ends where its content says (after a metric whose
// bytes hash to a chosen value, or at segmentMax bytes), so a metric
// inserted, replaced or removed changes its own segment and leaves the
// others' boundaries as they were. A new version of the family shares every
// segment whose metrics it holds unchanged, in the same order, with the
// version before: after a push to one group, the scrape encodes one segment
// per changed family and copies nothing else. A segment is also the unit of
// compression (gzipcache.go): it keeps its compressed bytes once a
// compressed scrape asked for them.
//
// A format cache that no scrape asked for uncompressed lately (render.go:
// keepsPlain; Prometheus always asks for gzip) renders its families
// compressed only: each new segment is compressed as it is closed and keeps
// its piece and the ends of its metrics, not its plain bytes, a sixth of
// the memory. A family is rendered again, whole, when the cache changes
// between the two, and only segments made the same way are shared.

const (
	// segmentMetrics is the average number of metrics per segment: a
	// power of two.
	segmentMetrics = 128
	// segmentMax ends a segment that grew this large without a natural
	// end.
	segmentMax = 256 << 10
)

// blockSeed hashes metric bytes to find segment ends; any seed works, one
// per process.
var blockSeed = maphash.MakeSeed()

// segment holds the encoded bytes of consecutive metrics of a family. It is
// immutable once made, except gz, and shared by the versions of the family
// that hold the same metrics.
type segment struct {
	// data is the plain bytes, nil in a segment rendered compressed only.
	data []byte
	// ends[i] is the end of the bytes of the segment's metric i in data
	// (in the plain bytes, also when they are not kept).
	ends []uint32
	// closed: the segment ended by the rule above, not at the family's
	// last metric.
	closed bool
	// gz is data compressed, nil until a compressed scrape asks for it;
	// set under the format cache's lock.
	gz *deflated
}

// renderedFamily is one family encoded in one format: a head (the family's
// header, in delimited protobuf preceded by the message length), segments
// of metrics and a tail (the unit field of a delimited protobuf family).
type renderedFamily struct {
	from *fsm.ExposedFamily // the merged family these bytes were made from
	// plain: the segments keep their plain bytes; otherwise they were
	// rendered compressed only, and parts is nil.
	plain bool
	head  []byte
	segs  []*segment
	// starts[k] is the index in from.Metrics of segs[k]'s first metric.
	starts []int
	tail   []byte
	// parts is the encoded family as consecutive pieces: head, the
	// segments' data, tail.
	parts [][]byte
	// gz is the family compressed (gzipcache.go), nil until a compressed
	// scrape asks.
	gz []deflated
}

// maxTieScan bounds the search for a metric among the previous version's
// metrics that sort equal to it (same label values, other grouping key).
const maxTieScan = 64

// renderFamily encodes ef in format k, sharing the segments of prev (an
// earlier version of the family, or nil) that hold metrics of ef unchanged
// and were rendered as plain asks, and copying the bytes of every other
// metric prev holds as well where it kept them (encoding it again where it
// did not). With plain unset the new segments keep only their compressed
// bytes.
//
// Both versions list their metrics in exposition order (fsm.MetricLess,
// ties broken by grouping key), and a metric that is in both keeps its
// place relative to the others, so one forward walk over prev finds the
// shared metrics: by pointer where the versions agree, by position where
// one metric replaced another between shared neighbours, and by label
// order otherwise. A metric is only ever reused by pointer identity, so a
// metric the walk misses is encoded again, never encoded wrong.
func renderFamily(k cacheKey, ef *fsm.ExposedFamily, prev *renderedFamily, plain bool) (*renderedFamily, error) {
	enc := newMetricEncoder(k, ef.Header)
	header, err := familyHeader(enc.typ, enc.scheme, ef)
	if err != nil {
		return nil, err
	}
	mf := ef.Header
	next := &renderedFamily{from: ef, plain: plain}
	var old []*fsm.Metric
	if prev != nil {
		old = prev.from.Metrics
		next.segs = make([]*segment, 0, len(prev.segs)+2)
		next.starts = make([]int, 0, len(prev.segs)+2)
	}
	var w segmentWriter
	var unpacked segmentBytes
	ps := 0 // the segment of prev holding old[j] or a later metric
	j := 0
	metrics := ef.Metrics
	for i := 0; i < len(metrics); {
		m := metrics[i]
		k := -1
		if j < len(old) {
			if old[j] == m {
				k = j
			} else if j+1 < len(old) && i+1 < len(metrics) && old[j+1] == metrics[i+1] {
				// m took old[j]'s place between unchanged neighbours (a
				// push of new values, the usual change): m is new and
				// old[j] is gone, told without comparing labels, which
				// costs cache misses on every metric a refresh walks past
				// when pushes touched groups all over the order.
				j++
			} else {
				for j < len(old) && fsm.MetricLess(old[j], m) {
					j++
				}
				for x := j; x < len(old) && x < j+maxTieScan && !fsm.MetricLess(m, old[x]); x++ {
					if old[x] == m {
						k = x
						break
					}
				}
			}
		}
		if k < 0 {
			w.begin(i)
			start := len(w.data)
			if w.data, err = enc.appendMetric(w.data, m); err != nil {
				return nil, err
			}
			w.ended(start)
		} else {
			for prev.starts[ps]+len(prev.segs[ps].ends) <= k {
				ps++
			}
			s := prev.segs[ps]
			if n := len(s.ends); w.empty() && prev.starts[ps] == k && i+n <= len(metrics) && s.plain() == plain &&
				(s.closed || i+n == len(metrics)) && samePointers(metrics[i:i+n], old[k:k+n]) {
				next.segs = append(next.segs, s)
				next.starts = append(next.starts, i)
				i += n
				j = k + n
				continue
			}
			data, err := unpacked.of(s)
			if err != nil {
				return nil, err
			}
			w.begin(i)
			start := len(w.data)
			w.data = append(w.data, s.chunkIn(data, k-prev.starts[ps])...)
			w.ended(start)
			j = k + 1
		}
		if w.full() {
			if err := next.closeSegment(&w, true); err != nil {
				return nil, err
			}
		}
		i++
	}
	if !w.empty() {
		if err := next.closeSegment(&w, false); err != nil {
			return nil, err
		}
	}
	body := 0
	for _, s := range next.segs {
		body += s.size()
	}
	if enc.typ == expfmt.TypeProtoDelim {
		// A delimited message: its length, then the family's fields, the
		// metrics (field 4) in order, then the unit (field 5).
		if mf.Unit != nil {
			next.tail = protowire.AppendTag(nil, 5, protowire.BytesType)
			next.tail = protowire.AppendString(next.tail, mf.GetUnit())
		}
		length := uint64(len(header) + body + len(next.tail))
		next.head = append(binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(header)), length), header...)
	} else {
		next.head = header
	}
	if !plain {
		return next, nil
	}
	next.parts = make([][]byte, 0, len(next.segs)+2)
	next.parts = append(next.parts, next.head)
	for _, s := range next.segs {
		next.parts = append(next.parts, s.data)
	}
	if len(next.tail) > 0 {
		next.parts = append(next.parts, next.tail)
	}
	return next, nil
}

// closeSegment appends the segment w built to rf, compressed only when rf
// is not plain.
func (rf *renderedFamily) closeSegment(w *segmentWriter, closed bool) error {
	first := w.first
	s, err := w.close(closed, rf.plain)
	if err != nil {
		return err
	}
	rf.segs = append(rf.segs, s)
	rf.starts = append(rf.starts, first)
	return nil
}

// samePointers reports whether a and b (of the same length) hold the same
// metrics.
func samePointers(a, b []*fsm.Metric) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// plain reports whether the segment keeps its plain bytes.
func (s *segment) plain() bool { return s.data != nil }

// size is the length of the segment's plain bytes.
func (s *segment) size() int { return int(s.ends[len(s.ends)-1]) }

// chunkIn returns the bytes of the segment's metric i from data, the
// segment's plain bytes.
func (s *segment) chunkIn(data []byte, i int) []byte {
	var from uint32
	if i > 0 {
		from = s.ends[i-1]
	}
	return data[from:s.ends[i]]
}

// segmentBytes gives renderFamily the plain bytes of the previous
// version's segments, to copy the metrics it keeps from: a segment
// rendered compressed only is decompressed, once for the metrics that
// follow in it. Decompressing a segment costs a tenth of encoding its
// metrics again, which reads every metric's labels from wherever they are
// in memory.
type segmentBytes struct {
	seg  *segment
	data []byte
}

// of returns the plain bytes of s.
func (u *segmentBytes) of(s *segment) ([]byte, error) {
	if s.plain() {
		return s.data, nil
	}
	if u.seg != s {
		data, err := s.gz.inflate(u.data[:0])
		if err != nil {
			return nil, err
		}
		u.seg, u.data = s, data
	}
	return u.data, nil
}

// segmentWriter builds one segment at a time, reusing its buffers.
type segmentWriter struct {
	data []byte
	ends []uint32
	// first is the index in the family of the segment's first metric.
	first int
	// hash is that of the last metric's bytes.
	hash uint64
}

func (w *segmentWriter) empty() bool { return len(w.ends) == 0 }

// begin is called before metric i of the family is appended.
func (w *segmentWriter) begin(i int) {
	if w.empty() {
		w.first = i
	}
}

// ended records that the bytes of a metric, from start, were appended.
func (w *segmentWriter) ended(start int) {
	w.ends = append(w.ends, uint32(len(w.data)))
	w.hash = maphash.Bytes(blockSeed, w.data[start:])
}

// full reports whether the segment ends after the last metric appended.
func (w *segmentWriter) full() bool {
	return len(w.data) >= segmentMax || w.hash%segmentMetrics == segmentMetrics-1
}

// close returns the segment built so far, its buffers copied (its bytes
// compressed instead when plain is unset), and starts the next one.
func (w *segmentWriter) close(closed, plain bool) (*segment, error) {
	s := &segment{ends: slices.Clone(w.ends), closed: closed}
	if plain {
		s.data = bytes.Clone(w.data)
	} else {
		piece, err := deflate(w.data)
		if err != nil {
			return nil, err
		}
		s.gz = &piece
	}
	w.data, w.ends = w.data[:0], w.ends[:0]
	return s, nil
}
