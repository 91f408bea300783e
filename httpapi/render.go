package httpapi

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// renderCache keeps the encoded bytes of every pushed family, per
// exposition format, and of every metric inside it. Stored metrics and
// merged families are immutable, so pointer identity tells what is still
// valid: a scrape re-encodes only the metrics that changed since the last
// one and concatenates the rest.
type renderCache struct {
	mu      sync.Mutex
	formats map[expfmt.Format]map[string]*renderedFamily
}

// renderedFamily is one family encoded in one format.
type renderedFamily struct {
	from   *dto.MetricFamily // the merged family these bytes were made from
	bytes  []byte
	chunks map[*dto.Metric][]byte
}

func newRenderCache() *renderCache {
	return &renderCache{formats: map[expfmt.Format]map[string]*renderedFamily{}}
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

// family returns the encoded bytes of mf in format f, re-encoding only
// metrics not seen in the previous version of the family.
func (c *renderCache) family(f expfmt.Format, mf *dto.MetricFamily) ([]byte, error) {
	c.mu.Lock()
	byName := c.formats[f]
	if byName == nil {
		byName = map[string]*renderedFamily{}
		c.formats[f] = byName
	}
	prev := byName[mf.GetName()]
	c.mu.Unlock()
	if prev != nil && prev.from == mf {
		return prev.bytes, nil
	}
	next, err := renderFamily(f, mf, prev)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	byName[mf.GetName()] = next
	c.mu.Unlock()
	return next.bytes, nil
}

// size returns the number of families cached for a format.
func (c *renderCache) size(f expfmt.Format) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.formats[f])
}

// forget drops cached families that are no longer exposed.
func (c *renderCache) forget(exposed map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, byName := range c.formats {
		for name := range byName {
			if !exposed[name] {
				delete(byName, name)
			}
		}
	}
}

func renderFamily(f expfmt.Format, mf *dto.MetricFamily, prev *renderedFamily) (*renderedFamily, error) {
	scheme := f.ToEscapingScheme()
	next := &renderedFamily{from: mf, chunks: make(map[*dto.Metric][]byte, len(mf.Metric))}
	var body bytes.Buffer
	header, err := familyHeader(f, scheme, mf)
	if err != nil {
		return nil, err
	}
	size := len(header)
	for _, m := range mf.Metric {
		chunk, ok := []byte(nil), false
		if prev != nil {
			chunk, ok = prev.chunks[m]
		}
		if !ok {
			if chunk, err = metricChunk(f, scheme, mf, m); err != nil {
				return nil, err
			}
		}
		next.chunks[m] = chunk
		size += len(chunk)
	}
	if f.FormatType() == expfmt.TypeProtoDelim {
		// A delimited message: its length, then the family's fields, the
		// metrics (field 4) in order, then the unit (field 5).
		var unit []byte
		if mf.Unit != nil {
			unit = protowire.AppendTag(unit, 5, protowire.BytesType)
			unit = protowire.AppendString(unit, mf.GetUnit())
		}
		body.Grow(size + len(unit) + binaryMaxVarint)
		body.Write(protowire.AppendVarint(nil, uint64(size+len(unit))))
		body.Write(header)
		for _, m := range mf.Metric {
			body.Write(next.chunks[m])
		}
		body.Write(unit)
	} else {
		body.Grow(size)
		body.Write(header)
		for _, m := range mf.Metric {
			body.Write(next.chunks[m])
		}
	}
	next.bytes = body.Bytes()
	return next, nil
}

const binaryMaxVarint = 10

// familyHeader is what precedes the metrics: "# HELP"/"# TYPE" lines in
// the text format, the name, help and type fields in protobuf.
func familyHeader(f expfmt.Format, scheme model.EscapingScheme, mf *dto.MetricFamily) ([]byte, error) {
	one := &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Metric: mf.Metric[:1]}
	esc := model.EscapeMetricFamily(one, scheme)
	if f.FormatType() == expfmt.TypeProtoDelim {
		var b []byte
		if esc.Name != nil {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, esc.GetName())
		}
		if esc.Help != nil {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendString(b, esc.GetHelp())
		}
		if esc.Type != nil {
			b = protowire.AppendTag(b, 3, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(esc.GetType()))
		}
		return b, nil
	}
	var buf bytes.Buffer
	if _, err := expfmt.MetricFamilyToText(&buf, esc); err != nil {
		return nil, fmt.Errorf("encode %s: %w", mf.GetName(), err)
	}
	text := buf.Bytes()
	n := 0
	for n < len(text) && text[n] == '#' {
		end := bytes.IndexByte(text[n:], '\n')
		if end < 0 {
			break
		}
		n += end + 1
	}
	return append([]byte(nil), text[:n]...), nil
}

// metricChunk encodes one metric of mf as it appears inside the family.
func metricChunk(f expfmt.Format, scheme model.EscapingScheme, mf *dto.MetricFamily, m *dto.Metric) ([]byte, error) {
	one := &dto.MetricFamily{Name: mf.Name, Type: mf.Type, Metric: []*dto.Metric{m}}
	esc := model.EscapeMetricFamily(one, scheme)
	if f.FormatType() == expfmt.TypeProtoDelim {
		mb, err := proto.MarshalOptions{Deterministic: true}.Marshal(esc.Metric[0])
		if err != nil {
			return nil, fmt.Errorf("encode a metric of %s: %w", mf.GetName(), err)
		}
		b := protowire.AppendTag(nil, 4, protowire.BytesType)
		return protowire.AppendBytes(b, mb), nil
	}
	var buf bytes.Buffer
	if _, err := expfmt.MetricFamilyToText(&buf, esc); err != nil {
		return nil, fmt.Errorf("encode a metric of %s: %w", mf.GetName(), err)
	}
	text := buf.Bytes()
	for len(text) > 0 && text[0] == '#' {
		end := bytes.IndexByte(text, '\n')
		if end < 0 {
			return nil, nil
		}
		text = text[end+1:]
	}
	return append([]byte(nil), text...), nil
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

// gzipWriter compresses scrape responses; pooled, as they are large.
type gzipWriter = gzip.Writer

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}
