package httpapi

import (
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// renderCache keeps the encoded bytes of every pushed family, per
// exposition format, in segments of metrics (renderfamily.go). Stored
// metrics and merged families are immutable, so pointer identity tells
// what is still valid: a scrape re-encodes only the segments holding
// metrics that changed since the last one and shares the rest.
type renderCache struct {
	mu      sync.Mutex
	formats map[cacheKey]*formatCache
	// scraped: a scrape asked for a cached format once (its cache may be
	// dropped since); under mu.
	scraped bool
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
	// lastGzipScrape is when a scrape last asked for this format
	// compressed, lastPlainScrape uncompressed (Unix nanoseconds; 0 if
	// none did, only the warmer).
	lastGzipScrape, lastPlainScrape atomic.Int64
	// afterWarmFamily, if set (by tests), runs in warm after each family,
	// without mu.
	afterWarmFamily func()
}

func newRenderCache() *renderCache {
	return &renderCache{formats: map[cacheKey]*formatCache{}}
}

// byKey returns the cache of encoding k.
func (c *renderCache) byKey(k cacheKey) *formatCache {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byKeyLocked(k)
}

// byKeyLocked is byKey with c.mu held.
func (c *renderCache) byKeyLocked(k cacheKey) *formatCache {
	fc := c.formats[k]
	if fc == nil {
		fc = &formatCache{key: k, families: map[string]*renderedFamily{}}
		c.formats[k] = fc
	}
	return fc
}

// forScrape returns the cache of encoding k for a scrape at now (Unix
// nanoseconds), compressed or not, noted as scraped so under the lock
// dropScrapedBefore takes.
func (c *renderCache) forScrape(k cacheKey, now int64, compressed bool) *formatCache {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scraped = true
	fc := c.byKeyLocked(k)
	if compressed {
		fc.lastGzipScrape.Store(now)
	} else {
		fc.lastPlainScrape.Store(now)
	}
	return fc
}

// lastScrape is when a scrape last asked for the format, compressed or not
// (0: none did).
func (fc *formatCache) lastScrape() int64 {
	return max(fc.lastGzipScrape.Load(), fc.lastPlainScrape.Load())
}

// scrapedSince returns the formats scraped at or after t, and whether any
// format was ever scraped (its cache dropped since or not).
func (c *renderCache) scrapedSince(t time.Time) (keys []cacheKey, ever bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, fc := range c.formats {
		if fc.lastScrape() >= t.UnixNano() {
			keys = append(keys, k)
		}
	}
	return keys, c.scraped
}

// dropScrapedBefore drops the caches of the formats no scrape asked for at
// or after t (those only the warmer made included): their memory is kept
// only for formats scraped lately. A scrape of a dropped format renders it
// again.
func (c *renderCache) dropScrapedBefore(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, fc := range c.formats {
		if fc.lastScrape() < t.UnixNano() {
			delete(c.formats, k)
		}
	}
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
// their bytes in the same order, each family as consecutive pieces.
// Families that changed are encoded again (their unchanged segments
// shared), in parallel when there is much to encode, as in the first
// scrape of a large store; families no longer pushed are dropped.
func (fc *formatCache) prepare(pushed []*fsm.ExposedFamily) ([][][]byte, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.prepareLocked(pushed, true)
}

// prepareLocked is prepare with fc.mu held, the families rendered with
// their plain bytes kept or compressed only (renderFamily); the bytes
// returned are nil for families rendered compressed only.
func (fc *formatCache) prepareLocked(pushed []*fsm.ExposedFamily, plain bool) ([][][]byte, error) {
	out := make([][][]byte, len(pushed))
	var stale []int
	work := 0
	for i, ef := range pushed {
		if rf := fc.families[ef.Name()]; rf.current(ef, plain) {
			out[i] = rf.parts
		} else {
			stale = append(stale, i)
			work += len(ef.Metrics)
		}
	}
	rendered := make([]*renderedFamily, len(stale))
	errs := make([]error, len(stale))
	render := func(k int) {
		ef := pushed[stale[k]]
		rendered[k], errs[k] = renderFamily(fc.key, ef, fc.families[ef.Name()], plain)
	}
	forEach(len(stale), work >= parallelMetrics, render)
	for k, i := range stale {
		if errs[k] != nil {
			return nil, errs[k]
		}
		fc.families[pushed[i].Name()] = rendered[k]
		out[i] = rendered[k].parts
	}
	if len(fc.families) > len(pushed) {
		names := make(map[string]bool, len(pushed))
		for _, ef := range pushed {
			names[ef.Name()] = true
		}
		for name := range fc.families {
			if !names[name] {
				delete(fc.families, name)
			}
		}
	}
	return out, nil
}

// current reports whether rf (nil: nothing cached) is ef rendered as plain
// asks.
func (rf *renderedFamily) current(ef *fsm.ExposedFamily, plain bool) bool {
	return rf != nil && rf.from == ef && rf.plain == plain
}

// keepsPlain reports whether the cache keeps the plain bytes of what it
// renders: when a scrape asked for the format uncompressed at or after
// since (Unix nanoseconds). Prometheus always asks for gzip, and the
// compressed pieces alone take a sixth of the memory.
func (fc *formatCache) keepsPlain(since int64) bool {
	return fc.lastPlainScrape.Load() >= since
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
