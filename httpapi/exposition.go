package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// exposition returns the /metrics handler: the node's own metrics merged
// with the pushed families, with promhttp's content negotiation (text
// 0.0.4 with escaping, delimited protobuf, gzip), as upstream.
//
// The text and delimited-protobuf answers for a consistent store are
// assembled from cached bytes (renderCache): only families and metrics
// changed since they were last encoded are encoded again, and a warmer
// does that in the background while the store changes (see warmExposition),
// so a scrape mostly copies. Everything else (the protobuf debug formats,
// and an inconsistent store, which must fail the scrape with 500 exactly
// like upstream's full gather) goes through promhttp with client_golang's
// checking Gatherers.
func (a *API) exposition() http.Handler {
	pushed := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return a.opts.Store.Families(), nil })
	checked := prometheus.Gatherers{a.opts.Registry, pushed}
	slow := buffered(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		if !a.opts.Store.Consistent() {
			return checked.Gather()
		}
		self, err := a.opts.Registry.Gather()
		return mergeFamilies(self, a.opts.Store.Families()), err
	}), a.logger)
	cache := newRenderCache()
	a.renderCache = cache
	if notifier, ok := a.opts.Store.(interface{ OnChange(func()) }); ok {
		// What a client gets that does not say what it accepts.
		unasked := keyOf(expfmt.NegotiateAccept(http.Header{}, expfmt.DefaultAcceptedFormats()...))
		w := newWarmer(warmDelay, warmMaxWait, warmIdle, warmBatch, func() bool {
			// Not while the node catches up (a restart replaying its log):
			// the exposition would be ordered and encoded for a state about
			// to change, with the CPU the replay needs.
			if a.opts.Readiness != nil && a.opts.Readiness.Ready() != nil {
				return false
			}
			a.warmExposition(cache, unasked)
			return true
		})
		notifier.OnChange(w.kick)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.awaitCurrent(r); err != nil {
			a.refuseStaleScrape(w, err)
			return
		}
		a.setReadIndex(w)
		format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
		if !cacheable(format) || !a.opts.Store.Consistent() {
			slow.ServeHTTP(w, r)
			return
		}
		self, err := a.opts.Registry.Gather()
		if err != nil {
			slow.ServeHTTP(w, r)
			return
		}
		now := time.Now().UnixNano()
		compressed := acceptsGzip(r)
		fc := cache.forScrape(keyOf(format), now, compressed)
		pushed := a.opts.Store.Exposed()
		var cached []part
		if compressed {
			var pieces [][]deflated
			plain := fc.keepsPlain(now - int64(warmWindow))
			if pieces, err = fc.prepareGzip(pushed, plain); err == nil {
				for _, p := range pieces {
					cached = append(cached, part{pieces: p})
				}
			}
		} else {
			var bodies [][][]byte
			if bodies, err = fc.prepare(pushed); err == nil {
				for _, b := range bodies {
					cached = append(cached, part{plain: b})
				}
			}
		}
		if err == nil {
			err = a.writeCached(w, format, compressed, self, pushed, cached)
		}
		if err != nil {
			a.logger.Error("error encoding metric families", "err", err)
			http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
		}
	})
}

// Timing of the exposition warmer (see warmer): it refreshes after
// warmDelay without a change, after warmBatch changes or warmMaxWait after
// a change, but not before warmSpacing times its last refresh's duration
// has passed, stops after warmIdle without a change, and keeps the formats
// scraped within warmWindow.
const (
	warmSpacing = 12
	warmDelay   = 250 * time.Millisecond
	warmBatch   = 1000
	warmMaxWait = 5 * time.Second
	warmIdle    = 30 * time.Second
	warmWindow  = 10 * time.Minute
)

// warmExposition brings the cached exposition up to date off the request
// path: the order of every changed family (fsm.FSM.Exposed) and its encoding
// in each format scraped within warmWindow, with its plain bytes when that
// format was scraped without compression and compressed when it was
// scraped with gzip (compressed only when it was not scraped without).
// Before the first scrape it encodes, compressed only, the format of a
// client that states no preference (text with the default escaping), which
// is what Prometheus before 3.0 gets, with gzip as every Prometheus asks.
// The caches of formats not scraped within warmWindow are dropped.
func (a *API) warmExposition(cache *renderCache, unasked cacheKey) {
	if !a.opts.Store.Consistent() {
		return
	}
	cutoff := time.Now().Add(-warmWindow)
	keys, ever := cache.scrapedSince(cutoff)
	if ever {
		cache.dropScrapedBefore(cutoff)
	} else {
		keys = []cacheKey{unasked}
	}
	if len(keys) == 0 {
		return
	}
	// What is cached is noted before the state is read: a family a scrape
	// brings up to date after that, from this state or a newer one, is
	// left as the scrape made it (formatCache.warm).
	fcs := make([]*formatCache, len(keys))
	seen := make([]map[string]*renderedFamily, len(keys))
	for i, k := range keys {
		fcs[i] = cache.byKey(k)
		seen[i] = fcs[i].cached()
	}
	pushed := a.opts.Store.Exposed()
	since := cutoff.UnixNano()
	for i, fc := range fcs {
		plain := fc.keepsPlain(since)
		compressed := !plain || fc.lastGzipScrape.Load() >= since
		if err := fc.warm(pushed, seen[i], plain, compressed); err != nil {
			a.logger.Debug("warm exposition", "err", err)
		}
	}
}

// part is one family of a scrape: its encoded bytes (plain, in
// consecutive pieces) or, in a compressed scrape, the compressed pieces of
// a pushed family (gzipstream.go).
type part struct {
	plain  [][]byte
	pieces []deflated
}

// writeCached writes the exposition: the node's own families (encoded
// now) merged by name with the pushed ones, whose cached parts are cached,
// compressed with gzip when compressed is set. Everything is encoded
// before the first byte is sent, so an encoding error is returned (the
// caller answers 500) instead of cutting a 200 short.
func (a *API) writeCached(w http.ResponseWriter, format expfmt.Format, compressed bool, self []*dto.MetricFamily, pushed []*fsm.ExposedFamily, cached []part) error {
	var own bytes.Buffer
	enc := expfmt.NewEncoder(&own, format)
	parts := make([]part, 0, len(self)+len(pushed))
	encode := func(mf *dto.MetricFamily) error {
		start := own.Len()
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("encode %s: %w", mf.GetName(), err)
		}
		parts = append(parts, part{plain: [][]byte{own.Bytes()[start:own.Len():own.Len()]}})
		return nil
	}
	i, j := 0, 0
	for i < len(self) || j < len(pushed) {
		var err error
		switch {
		case j >= len(pushed) || (i < len(self) && self[i].GetName() < pushed[j].Name()):
			err = encode(self[i])
			i++
		case i >= len(self) || pushed[j].Name() < self[i].GetName():
			parts = append(parts, cached[j])
			j++
		default:
			err = encode(mergeFamilies(self[i:i+1], []*dto.MetricFamily{pushed[j].Proto()})[0])
			i++
			j++
		}
		if err != nil {
			return err
		}
	}

	var pieces []deflated
	if compressed {
		// Own families between cached ones are compressed together, each
		// run into one piece.
		var run []byte
		flush := func() error {
			if len(run) == 0 {
				return nil
			}
			piece, err := deflate(run)
			if err != nil {
				return err
			}
			pieces, run = append(pieces, piece), nil
			return nil
		}
		for _, p := range parts {
			if p.pieces == nil {
				for _, b := range p.plain {
					run = append(run, b...)
				}
				continue
			}
			if err := flush(); err != nil {
				return err
			}
			pieces = append(pieces, p.pieces...)
		}
		if err := flush(); err != nil {
			return err
		}
	}

	h := w.Header()
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Type", string(format))
	// Families come in many small pieces: they are gathered into large
	// writes.
	bw := sendBuffers.Get().(*bufio.Writer)
	defer sendBuffers.Put(bw)
	bw.Reset(w)
	defer bw.Reset(nil)
	var err error
	if compressed {
		h.Set("Content-Encoding", "gzip")
		err = writeGzip(bw, pieces)
	} else {
		err = writePlain(bw, parts)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		// The client went away; nothing more to send.
		a.logger.Debug("send metrics", "err", err)
	}
	return nil
}

// sendBuffers gather the pieces of an exposition into large writes.
var sendBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 128<<10) }}

// writePlain writes the pieces of parts to w.
func writePlain(w io.Writer, parts []part) error {
	for _, p := range parts {
		for _, b := range p.plain {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// buffered returns promhttp's handler for g (content negotiation, gzip,
// 500 when the gather fails, as upstream) with its answer held back until
// it is complete: if encoding a family fails halfway, the client gets 500
// with the reason instead of a 200 cut short.
func buffered(g prometheus.Gatherer, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
		el := &encodeErrors{logger: logger}
		promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: el}).ServeHTTP(rec, r)
		if el.encoding != "" && rec.code == http.StatusOK {
			http.Error(w, "An error has occurred while serving metrics:\n\n"+el.encoding, http.StatusInternalServerError)
			return
		}
		maps.Copy(w.Header(), rec.header)
		w.WriteHeader(rec.code)
		if _, err := w.Write(rec.body.Bytes()); err != nil {
			logger.Debug("send metrics", "err", err)
		}
	})
}

// bufferedResponse holds an answer until it is complete.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) WriteHeader(code int)        { b.code = code }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }

// encodeErrors is promhttp's error log for one request: it logs every
// line (a failed gather, a compression it could not set up and served
// without) and keeps the encoding failures, which cut the answer short.
type encodeErrors struct {
	logger   *slog.Logger
	encoding string
}

// promhttpEncodeError starts promhttp's log line for a family it could not
// encode or send.
const promhttpEncodeError = "error encoding and sending metric family"

func (e *encodeErrors) Println(v ...interface{}) {
	line := strings.TrimSpace(fmt.Sprintln(v...))
	e.logger.Error(line)
	if strings.HasPrefix(line, promhttpEncodeError) {
		e.encoding += line + "; "
	}
}

// mergeFamilies merges two name-sorted family lists. A pushed family with
// the name of one of the node's own keeps the node's help and type, and
// the metrics of both are ordered as in a gather.
func mergeFamilies(self, pushed []*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(self)+len(pushed))
	i, j := 0, 0
	for i < len(self) && j < len(pushed) {
		a, b := self[i], pushed[j]
		switch {
		case a.GetName() < b.GetName():
			out = append(out, a)
			i++
		case a.GetName() > b.GetName():
			out = append(out, b)
			j++
		default:
			m := &dto.MetricFamily{
				Name:   a.Name,
				Help:   a.Help,
				Type:   a.Type,
				Metric: append(append(make([]*dto.Metric, 0, len(a.Metric)+len(b.Metric)), a.Metric...), b.Metric...),
			}
			sort.SliceStable(m.Metric, func(x, y int) bool { return fsm.LabelsLess(m.Metric[x].Label, m.Metric[y].Label) })
			out = append(out, m)
			i++
			j++
		}
	}
	out = append(out, self[i:]...)
	return append(out, pushed[j:]...)
}
