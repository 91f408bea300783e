package httpapi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file enforces --push.max-series-per-push while a body is read, so a
// body over the limit is refused after reading only as much as the limit
// allows, instead of being parsed whole first (a few MB of gzip can hold
// millions of series). The parsers stay expfmt's and protobuf's own; the
// counters only look at the bytes on their way in.

// errTooManySeries is returned by the counting readers once a body holds
// more series than allowed.
var errTooManySeries = errors.New("too many series")

// textSeriesCounter passes a text-format body through and counts the
// series the text parser will make of it: every sample line of a counter,
// gauge or untyped family is one metric; the lines of a histogram or
// summary series (its buckets or quantiles, _sum and _count) are one
// metric per label set without "le" or "quantile". Once the count passes
// max, Read fails with errTooManySeries.
//
// With labels set, it also enforces the per-series label limits on every
// sample line (labels per series, grouping labels included, and the bytes
// of each label value once unescaped), as pushLimits.check does after
// parsing: a body with one oversized series is refused at that line, and
// Read fails with the limit's error.
type textSeriesCounter struct {
	r        io.Reader
	max      int
	count    int
	exceeded bool
	labels   *labelLimits
	err      error                     // a label limit exceeded
	partial  []byte                    // an incomplete line carried to the next Read
	types    map[string]dto.MetricType // families declared by # TYPE lines
	seen     map[uint64]struct{}       // histogram and summary series
}

func newTextSeriesCounter(r io.Reader, max int) *textSeriesCounter {
	return &textSeriesCounter{r: r, max: max, types: map[string]dto.MetricType{}, seen: map[uint64]struct{}{}}
}

// labelLimits are the label limits a textSeriesCounter enforces, with the
// grouping labels every series will carry.
type labelLimits struct {
	limits   pushLimits
	grouping map[string]string
}

func (c *textSeriesCounter) Read(p []byte) (int, error) {
	if c.exceeded {
		return 0, errTooManySeries
	}
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	data := p[:n]
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			c.partial = append(c.partial, data...)
			break
		}
		line := data[:i]
		if len(c.partial) > 0 {
			c.partial = append(c.partial, line...)
			line = c.partial
		}
		c.line(line)
		c.partial = c.partial[:0]
		data = data[i+1:]
	}
	if err == io.EOF && len(c.partial) > 0 {
		c.line(c.partial)
		c.partial = nil
	}
	if c.count > c.max {
		c.exceeded = true
		return 0, errTooManySeries
	}
	if c.err != nil {
		return 0, c.err
	}
	return n, err
}

// line counts one line of the text format.
func (c *textSeriesCounter) line(l []byte) {
	l = bytes.TrimLeft(l, " \t")
	if len(l) == 0 {
		return
	}
	if l[0] == '#' {
		c.comment(l[1:])
		return
	}
	name, labels, ok := splitSample(l)
	if !ok {
		c.count++ // the parser will refuse it; count it to stay on the safe side
		return
	}
	family, drop := c.family(name)
	if c.labels != nil && c.err == nil {
		c.err = c.labels.checkLine(string(family), labels, drop)
	}
	if drop == "" {
		c.count++
		return
	}
	slices.SortFunc(labels, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	h := xxhash.New()
	_, _ = h.Write(family)
	for _, lp := range labels {
		if string(lp[0]) == drop {
			continue
		}
		_, _ = h.Write([]byte{model.SeparatorByte})
		_, _ = h.Write(lp[0])
		_, _ = h.Write([]byte{model.SeparatorByte})
		_, _ = h.Write(lp[1])
	}
	if _, ok := c.seen[h.Sum64()]; !ok {
		c.seen[h.Sum64()] = struct{}{}
		c.count++
	}
}

// checkLine applies the label limits to the raw label pairs of one sample
// line of the given family; drop is the label (le, quantile) that its
// metric does not carry.
func (l *labelLimits) checkLine(family string, pairs [][2][]byte, drop string) error {
	n := len(l.grouping)
	for _, lp := range pairs {
		name := string(lp[0])
		if name == drop {
			continue
		}
		if err := l.limits.checkValue(name, family, unescapedLen(lp[1])); err != nil {
			return err
		}
		if _, dup := l.grouping[name]; !dup {
			n++
		}
	}
	return l.limits.checkLabelCount(family, n)
}

// unescapedLen is the length of a quoted label value once its backslash
// escapes are resolved (each escape is two bytes for one).
func unescapedLen(raw []byte) int {
	n := len(raw)
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\\' {
			n--
			i++
		}
	}
	return n
}

// comment records the type of a "# TYPE name type" line.
func (c *textSeriesCounter) comment(l []byte) {
	l = bytes.TrimLeft(l, " \t")
	rest, ok := bytes.CutPrefix(l, []byte("TYPE"))
	if !ok || len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
		return
	}
	rest = bytes.TrimLeft(rest, " \t")
	name, rest, ok := cutName(rest)
	if !ok {
		return
	}
	// The parser takes the type word in any case; a gauge histogram's
	// lines group like a histogram's.
	switch strings.ToLower(string(bytes.TrimSpace(rest))) {
	case "histogram", "gaugehistogram", "gauge_histogram":
		c.types[string(name)] = dto.MetricType_HISTOGRAM
	case "summary":
		c.types[string(name)] = dto.MetricType_SUMMARY
	default:
		c.types[string(name)] = dto.MetricType_UNTYPED
	}
}

// family returns the family a sample of this name belongs to and, for a
// histogram or summary, the label that tells its lines apart ("" for
// families whose every line is a metric of its own).
func (c *textSeriesCounter) family(name []byte) ([]byte, string) {
	switch c.types[string(name)] {
	case dto.MetricType_HISTOGRAM:
		return name, model.BucketLabel
	case dto.MetricType_SUMMARY:
		return name, model.QuantileLabel
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := bytes.CutSuffix(name, []byte(suffix))
		if !ok {
			continue
		}
		switch t := c.types[string(base)]; {
		case t == dto.MetricType_HISTOGRAM:
			return base, model.BucketLabel
		case t == dto.MetricType_SUMMARY && suffix != "_bucket":
			return base, model.QuantileLabel
		}
	}
	return name, ""
}

// splitSample splits a sample line into its metric name and its label
// pairs (raw, still quoted and escaped): `name{a="x",...} value` or, with
// UTF-8 names, `{"name", a="x", ...} value`.
func splitSample(l []byte) (name []byte, labels [][2][]byte, ok bool) {
	if l[0] != '{' {
		i := bytes.IndexAny(l, "{ \t")
		if i < 0 {
			return l, nil, true
		}
		name, l = l[:i], bytes.TrimLeft(l[i:], " \t") // the parser allows blanks before '{'
		if len(l) == 0 || l[0] != '{' {
			return name, nil, true
		}
	}
	l = l[1:]
	for {
		l = bytes.TrimLeft(l, " \t")
		if len(l) == 0 {
			return nil, nil, false
		}
		if l[0] == '}' {
			return name, labels, name != nil
		}
		var label []byte
		if label, l, ok = cutName(l); !ok {
			return nil, nil, false
		}
		l = bytes.TrimLeft(l, " \t")
		if len(l) > 0 && l[0] == '=' {
			var value []byte
			if value, l, ok = cutQuoted(bytes.TrimLeft(l[1:], " \t")); !ok {
				return nil, nil, false
			}
			labels = append(labels, [2][]byte{label, value})
		} else if name == nil {
			name = label // the quoted metric name of the UTF-8 syntax
		} else {
			return nil, nil, false
		}
		l = bytes.TrimLeft(l, " \t")
		if len(l) > 0 && l[0] == ',' {
			l = l[1:]
		}
	}
}

// cutName cuts a name, bare or quoted, off the front of l.
func cutName(l []byte) (name, rest []byte, ok bool) {
	if len(l) > 0 && l[0] == '"' {
		return cutQuoted(l)
	}
	i := bytes.IndexAny(l, "=,}{ \t")
	if i < 0 {
		i = len(l)
	}
	return l[:i], l[i:], i > 0
}

// cutQuoted cuts a double-quoted string (backslash escapes) off the front
// of l and returns its raw content.
func cutQuoted(l []byte) (content, rest []byte, ok bool) {
	if len(l) == 0 || l[0] != '"' {
		return nil, nil, false
	}
	for i := 1; i < len(l); i++ {
		switch l[i] {
		case '\\':
			i++
		case '"':
			return l[1:i], l[i+1:], true
		}
	}
	return nil, nil, false
}

// metricFieldNumber is the field of MetricFamily that holds its metrics.
const metricFieldNumber = 4

// nameFieldNumber is the field of MetricFamily that holds its name.
const nameFieldNumber = 1

// countMetricFields returns the name and counts the metrics of an encoded
// MetricFamily without decoding it; malformed bytes count as far as they
// go (the decoder will refuse them).
func countMetricFields(b []byte) (name string, n int) {
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return name, n
		}
		b = b[k:]
		k = protowire.ConsumeFieldValue(num, typ, b)
		if k < 0 {
			return name, n
		}
		switch {
		case num == metricFieldNumber:
			n++
		case num == nameFieldNumber && typ == protowire.BytesType:
			if v, m := protowire.ConsumeBytes(b); m > 0 {
				name = string(v)
			}
		}
		b = b[k:]
	}
	return name, n
}

// protobufSeries counts the series of a delimited-protobuf body as it is
// read: a family replaces an earlier one of the same name (as the parser
// keeps the last), so only the last counts.
type protobufSeries struct {
	byName map[string]int
	total  int
}

// add counts one encoded family and returns the total.
func (p *protobufSeries) add(b []byte) int {
	name, n := countMetricFields(b)
	if p.byName == nil {
		p.byName = map[string]int{}
	}
	p.total += n - p.byName[name]
	p.byName[name] = n
	return p.total
}

// readDelimited reads one length-delimited message of at most maxSize
// bytes; io.EOF at a message boundary. The buffer grows with the bytes
// that arrive, not with the length the sender claims.
func readDelimited(r io.ByteReader, body io.Reader, maxSize int64) ([]byte, error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	if size > uint64(maxSize) {
		return nil, errors.New("protobuf message larger than the body limit")
	}
	var b bytes.Buffer
	b.Grow(int(min(size, 64<<10)))
	got, err := b.ReadFrom(io.LimitReader(body, int64(size)))
	if err != nil {
		return nil, err
	}
	if uint64(got) < size {
		return nil, io.ErrUnexpectedEOF
	}
	return b.Bytes(), nil
}
