package httpapi

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// renderCache keeps the encoded bytes of every pushed family, per
// exposition format, and where inside them each metric's bytes are.
// Stored metrics and merged families are immutable, so pointer identity
// tells what is still valid: a scrape re-encodes only the metrics that
// changed since the last one and copies the rest.
type renderCache struct {
	mu      sync.Mutex
	formats map[expfmt.Format]map[string]*renderedFamily
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
		return prev.bytes(), nil
	}
	next, err := renderFamily(f, mf, prev)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	byName[mf.GetName()] = next
	c.mu.Unlock()
	return next.bytes(), nil
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

// maxTieScan bounds the search for a metric among the previous version's
// metrics that sort equal to it (same label values, other grouping key).
const maxTieScan = 64

// renderFamily encodes mf in format f, copying the bytes of every metric
// that prev (an earlier version of the family, or nil) holds as well.
//
// Both versions list their metrics in exposition order (fsm.MetricLess,
// ties broken by grouping key), and a metric that is in both keeps its
// place relative to the others, so one forward walk over prev finds the
// shared metrics. A metric is only ever reused by pointer identity, so a
// metric the walk misses is encoded again, never encoded wrong.
func renderFamily(f expfmt.Format, mf *dto.MetricFamily, prev *renderedFamily) (*renderedFamily, error) {
	enc := newMetricEncoder(f, mf)
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
		reserve = binaryMaxVarint
	}
	buf := make([]byte, reserve, reserve+size)
	buf = append(buf, header...)
	next := &renderedFamily{from: mf, first: uint32(len(buf)), ends: make([]uint32, len(mf.Metric))}
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

// metricEncoder encodes the metrics of one family in one format.
type metricEncoder struct {
	typ    expfmt.FormatType
	scheme model.EscapingScheme
	mf     *dto.MetricFamily
	// plainName: the family name needs neither escaping nor quoting.
	plainName bool
	scratch   []byte
}

func newMetricEncoder(f expfmt.Format, mf *dto.MetricFamily) *metricEncoder {
	return &metricEncoder{
		typ:       f.FormatType(),
		scheme:    f.ToEscapingScheme(),
		mf:        mf,
		plainName: model.IsValidLegacyMetricName(mf.GetName()),
	}
}

// appendMetric appends the encoding of m as it appears inside the family.
// Metrics whose label names need neither escaping nor quoting take a
// direct path (the usual case); the others, and every type the direct path
// does not write, go through expfmt as one-metric families.
func (e *metricEncoder) appendMetric(b []byte, m *dto.Metric) ([]byte, error) {
	if plainLabels(m) {
		switch e.typ {
		case expfmt.TypeProtoDelim:
			// Escaping leaves a metric with plain label names as it is.
			var err error
			e.scratch, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(e.scratch[:0], m)
			if err != nil {
				return nil, fmt.Errorf("encode a metric of %s: %w", e.mf.GetName(), err)
			}
			b = protowire.AppendTag(b, 4, protowire.BytesType)
			return protowire.AppendBytes(b, e.scratch), nil
		case expfmt.TypeTextPlain:
			if v, ok := simpleSample(e.mf.GetType(), m); ok && e.plainName && m.TimestampMs == nil {
				return appendTextSample(b, e.mf.GetName(), m.Label, v), nil
			}
		}
	}
	chunk, err := metricChunk(e.typ, e.scheme, e.mf, m)
	if err != nil {
		return nil, err
	}
	return append(b, chunk...), nil
}

// plainLabels reports whether no label name of m needs quoting or escaping
// in any scheme (nor the value of a __name__ label).
func plainLabels(m *dto.Metric) bool {
	for _, lp := range m.Label {
		name := lp.GetName()
		if !model.IsValidLegacyMetricName(name) {
			return false
		}
		if name == model.MetricNameLabel && !model.IsValidLegacyMetricName(lp.GetValue()) {
			return false
		}
	}
	return true
}

// simpleSample returns the value of a one-line sample (gauge, counter,
// untyped) and whether m is one.
func simpleSample(t dto.MetricType, m *dto.Metric) (float64, bool) {
	switch t {
	case dto.MetricType_GAUGE:
		if m.Gauge != nil {
			return m.Gauge.GetValue(), true
		}
	case dto.MetricType_COUNTER:
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
	case dto.MetricType_UNTYPED:
		if m.Untyped != nil {
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// appendTextSample appends one sample line as expfmt.MetricFamilyToText
// writes it for a legacy-valid name and label names, no timestamp.
func appendTextSample(b []byte, name string, labels []*dto.LabelPair, v float64) []byte {
	b = append(b, name...)
	for i, lp := range labels {
		if i == 0 {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		b = append(b, lp.GetName()...)
		b = append(b, '=', '"')
		b = appendLabelValue(b, lp.GetValue())
		b = append(b, '"')
	}
	if len(labels) > 0 {
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendTextFloat(b, v)
	return append(b, '\n')
}

// appendLabelValue escapes like expfmt: backslash, newline, double quote.
func appendLabelValue(b []byte, v string) []byte {
	if !strings.ContainsAny(v, "\\\n\"") {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '"':
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendTextFloat formats like expfmt's writeFloat.
func appendTextFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, '-', '1')
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

const binaryMaxVarint = 10

// familyHeader is what precedes the metrics: "# HELP"/"# TYPE" lines in
// the text format, the name, help and type fields in protobuf.
func familyHeader(typ expfmt.FormatType, scheme model.EscapingScheme, mf *dto.MetricFamily) ([]byte, error) {
	one := &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Metric: mf.Metric[:1]}
	esc := model.EscapeMetricFamily(one, scheme)
	if typ == expfmt.TypeProtoDelim {
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

// metricChunk encodes one metric of mf as it appears inside the family,
// through expfmt (the general path of metricEncoder.appendMetric).
func metricChunk(typ expfmt.FormatType, scheme model.EscapingScheme, mf *dto.MetricFamily, m *dto.Metric) ([]byte, error) {
	one := &dto.MetricFamily{Name: mf.Name, Type: mf.Type, Metric: []*dto.Metric{m}}
	esc := model.EscapeMetricFamily(one, scheme)
	if typ == expfmt.TypeProtoDelim {
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
