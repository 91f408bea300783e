package httpapi

import (
	"encoding/binary"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// renderCache keeps the encoded bytes of every pushed family, per
// exposition format, and where inside them each metric's bytes are.
// Stored metrics and merged families are immutable, so pointer identity
// tells what is still valid: a scrape re-encodes only the metrics that
// changed since the last one and copies the rest.
type renderCache struct {
	mu      sync.Mutex
	formats map[cacheKey]*formatCache
}

// cacheKey identifies an encoding: the text format (any version) or
// delimited protobuf, with an escaping scheme.
type cacheKey struct {
	typ    expfmt.FormatType
	scheme model.EscapingScheme
}

func keyOf(f expfmt.Format) cacheKey { return cacheKey{f.FormatType(), f.ToEscapingScheme()} }

// formatCache holds the families encoded in one format. mu is held while
// they are brought up to date, so a scrape that arrives while the warmer
// encodes waits for that work instead of doing it a second time.
type formatCache struct {
	key      cacheKey
	mu       sync.Mutex
	families map[string]*renderedFamily
	// lastScrape is when a scrape last asked for this format (Unix
	// nanoseconds; 0 if only the warmer did), lastGzipScrape when one
	// asked for it compressed.
	lastScrape, lastGzipScrape atomic.Int64
}

// renderedFamily is one family encoded in one format. The bytes of metric
// i of from.Metric are buf[ends[i-1]:ends[i]] (buf[first:ends[0]] for the
// first one): a new version of the family copies the bytes of the metrics
// it shares with this one instead of encoding them again.
type renderedFamily struct {
	from  *dto.MetricFamily // the merged family these bytes were made from
	buf   []byte
	start int // the encoded family is buf[start:]
	first uint32
	ends  []uint32
	// gz is the family compressed (gzipcache.go), nil until a compressed
	// scrape asks; prevGz is the last compressed earlier version, whose
	// members the compression reuses.
	gz, prevGz *gzipFamily
}

// bytes returns the encoded family.
func (rf *renderedFamily) bytes() []byte { return rf.buf[rf.start:] }

// chunk returns the encoded metric i of rf.from.
func (rf *renderedFamily) chunk(i int) []byte {
	from := rf.first
	if i > 0 {
		from = rf.ends[i-1]
	}
	return rf.buf[from:rf.ends[i]]
}

func newRenderCache() *renderCache {
	return &renderCache{formats: map[cacheKey]*formatCache{}}
}

// byKey returns the cache of encoding k.
func (c *renderCache) byKey(k cacheKey) *formatCache {
	c.mu.Lock()
	defer c.mu.Unlock()
	fc := c.formats[k]
	if fc == nil {
		fc = &formatCache{key: k, families: map[string]*renderedFamily{}}
		c.formats[k] = fc
	}
	return fc
}

// scrapedSince returns the formats scraped at or after t, and whether any
// format was ever scraped.
func (c *renderCache) scrapedSince(t time.Time) (keys []cacheKey, ever bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, fc := range c.formats {
		last := fc.lastScrape.Load()
		if last != 0 {
			ever = true
			if last >= t.UnixNano() {
				keys = append(keys, k)
			}
		}
	}
	return keys, ever
}

// cacheable reports whether the format has a cached encoding: the text
// format and delimited protobuf, with any escaping scheme.
func cacheable(f expfmt.Format) bool {
	switch f.FormatType() {
	case expfmt.TypeTextPlain, expfmt.TypeProtoDelim:
		return true
	}
	return false
}

// parallelMetrics is the number of metrics to encode from which prepare
// encodes families in parallel.
const parallelMetrics = 20000

// prepare brings the encoded families up to date with pushed and returns
// their bytes in the same order. Families that changed are encoded again
// (their unchanged metrics copied), in parallel when there is much to
// encode, as in the first scrape of a large store; families no longer
// pushed are dropped.
func (fc *formatCache) prepare(pushed []*dto.MetricFamily) ([][]byte, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.prepareLocked(pushed)
}

// prepareLocked is prepare with fc.mu held.
func (fc *formatCache) prepareLocked(pushed []*dto.MetricFamily) ([][]byte, error) {
	out := make([][]byte, len(pushed))
	var stale []int
	work := 0
	for i, mf := range pushed {
		if rf := fc.families[mf.GetName()]; rf != nil && rf.from == mf {
			out[i] = rf.bytes()
		} else {
			stale = append(stale, i)
			work += len(mf.Metric)
		}
	}
	rendered := make([]*renderedFamily, len(stale))
	errs := make([]error, len(stale))
	render := func(k int) {
		mf := pushed[stale[k]]
		rendered[k], errs[k] = renderFamily(fc.key, mf, fc.families[mf.GetName()])
	}
	forEach(len(stale), work >= parallelMetrics, render)
	for k, i := range stale {
		if errs[k] != nil {
			return nil, errs[k]
		}
		fc.families[pushed[i].GetName()] = rendered[k]
		out[i] = rendered[k].bytes()
	}
	if len(fc.families) > len(pushed) {
		names := make(map[string]bool, len(pushed))
		for _, mf := range pushed {
			names[mf.GetName()] = true
		}
		for name := range fc.families {
			if !names[name] {
				delete(fc.families, name)
			}
		}
	}
	return out, nil
}

// maxTieScan bounds the search for a metric among the previous version's
// metrics that sort equal to it (same label values, other grouping key).
const maxTieScan = 64

// renderFamily encodes mf in format k, copying the bytes of every metric
// that prev (an earlier version of the family, or nil) holds as well.
//
// Both versions list their metrics in exposition order (fsm.MetricLess,
// ties broken by grouping key), and a metric that is in both keeps its
// place relative to the others, so one forward walk over prev finds the
// shared metrics. A metric is only ever reused by pointer identity, so a
// metric the walk misses is encoded again, never encoded wrong.
func renderFamily(k cacheKey, mf *dto.MetricFamily, prev *renderedFamily) (*renderedFamily, error) {
	enc := newMetricEncoder(k, mf)
	header, err := familyHeader(enc.typ, enc.scheme, mf)
	if err != nil {
		return nil, err
	}
	var old []*dto.Metric
	size := len(header) + 64*len(mf.Metric)
	if prev != nil {
		// Room for what the previous version held, scaled to the number
		// of metrics, with slack for longer values: growing the buffer
		// would copy it.
		old = prev.from.Metric
		per := len(prev.bytes())/(len(old)+1) + 1
		size = len(header) + per*(len(mf.Metric)+1) + len(prev.bytes())/16 + 256
	}
	// Delimited protobuf starts with the message length, known only at
	// the end: leave room for it.
	reserve := 0
	if enc.typ == expfmt.TypeProtoDelim {
		reserve = binary.MaxVarintLen64
	}
	buf := make([]byte, reserve, reserve+size)
	buf = append(buf, header...)
	next := &renderedFamily{from: mf, first: uint32(len(buf)), ends: make([]uint32, len(mf.Metric))}
	if prev != nil {
		next.prevGz = prev.gz
		if next.prevGz == nil {
			next.prevGz = prev.prevGz
		}
	}
	j := 0
	for i, m := range mf.Metric {
		k := -1
		if j < len(old) {
			if old[j] == m {
				k = j
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
		if k >= 0 {
			buf = append(buf, prev.chunk(k)...)
			j = k + 1
		} else if buf, err = enc.appendMetric(buf, m); err != nil {
			return nil, err
		}
		next.ends[i] = uint32(len(buf))
	}
	if enc.typ == expfmt.TypeProtoDelim {
		// A delimited message: its length, then the family's fields, the
		// metrics (field 4) in order, then the unit (field 5).
		if mf.Unit != nil {
			buf = protowire.AppendTag(buf, 5, protowire.BytesType)
			buf = protowire.AppendString(buf, mf.GetUnit())
		}
		length := protowire.AppendVarint(nil, uint64(len(buf)-reserve))
		next.start = reserve - len(length)
		copy(buf[next.start:], length)
	}
	next.buf = buf
	return next, nil
}

// acceptsGzip reports whether the request accepts a gzip response body.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := 1.0
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			if parsed, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				q = parsed
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}

// forEach calls fn(0) … fn(n-1): on every CPU at once when parallel is
// set, otherwise one after the other.
func forEach(n int, parallel bool, fn func(k int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if !parallel || workers < 2 {
		for k := range n {
			fn(k)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < n; k = int(next.Add(1) - 1) {
				fn(k)
			}
		})
	}
	wg.Wait()
}
