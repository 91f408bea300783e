// The encoders of the render cache: one family's header and one metric's
// bytes in each exposition format, with a direct path for the usual
// metrics (plain label names, simple samples) and expfmt for the rest.

package httpapi

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// metricEncoder encodes the metrics of one family in one format.
type metricEncoder struct {
	typ    expfmt.FormatType
	scheme model.EscapingScheme
	mf     *dto.MetricFamily
	// plainName: the family name needs neither escaping nor quoting.
	plainName bool
	scratch   []byte
}

func newMetricEncoder(k cacheKey, mf *dto.MetricFamily) *metricEncoder {
	return &metricEncoder{
		typ:       k.typ,
		scheme:    k.scheme,
		mf:        mf,
		plainName: model.LegacyValidation.IsValidMetricName(mf.GetName()),
	}
}

// appendMetric appends the encoding of m as it appears inside the family.
// Metrics whose label names need neither escaping nor quoting take a
// direct path (the usual case); the others, and every type the direct path
// does not write, go through expfmt as one-metric families.
func (e *metricEncoder) appendMetric(b []byte, m *fsm.Metric) ([]byte, error) {
	if plainLabels(m.Labels()) {
		switch e.typ {
		case expfmt.TypeProtoDelim:
			// Escaping leaves a metric with plain label names as it is.
			var err error
			if e.scratch, err = m.AppendProto(e.scratch[:0]); err != nil {
				return nil, fmt.Errorf("family %s: %w", e.mf.GetName(), err)
			}
			b = protowire.AppendTag(b, 4, protowire.BytesType)
			return protowire.AppendBytes(b, e.scratch), nil
		case expfmt.TypeTextPlain:
			if v, ok := m.Sample(e.mf.GetType()); ok && e.plainName && !m.HasTimestamp() {
				return appendTextSample(b, e.mf.GetName(), m.Labels(), v), nil
			}
		}
	}
	chunk, err := metricChunk(e.typ, e.scheme, e.mf, m.Proto())
	if err != nil {
		return nil, err
	}
	return append(b, chunk...), nil
}

// plainLabels reports whether no label name needs quoting or escaping in
// any scheme (nor the value of a __name__ label).
func plainLabels(labels []*dto.LabelPair) bool {
	for _, lp := range labels {
		name := lp.GetName()
		if !model.LegacyValidation.IsValidMetricName(name) {
			return false
		}
		if name == model.MetricNameLabel && !model.LegacyValidation.IsValidMetricName(lp.GetValue()) {
			return false
		}
	}
	return true
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

// familyHeader is what precedes the metrics: "# HELP"/"# TYPE" lines in
// the text format, the name, help and type fields in protobuf.
func familyHeader(typ expfmt.FormatType, scheme model.EscapingScheme, ef *fsm.ExposedFamily) ([]byte, error) {
	mf := ef.Header
	one := &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type}
	if len(ef.Metrics) > 0 {
		one.Metric = []*dto.Metric{ef.Metrics[0].Proto()}
	}
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
