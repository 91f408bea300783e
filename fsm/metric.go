package fsm

import (
	"fmt"
	"math"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Metric is one stored metric (a series of a family of a group): its label
// pairs and, for the usual shape, its sample, in one flat record.
//
// A dto.Metric is 112 bytes and its Gauge message 48 more, both pointer
// rich, with the value on its own: about 170 bytes and five pointers for
// one gauge sample, most of the state at a million series and most of the
// collector's marking work. A record of the usual shape (label pairs and
// one gauge, counter or untyped value with nothing else, and an optional
// timestamp) is 56 bytes with two pointers, and the families of a command
// keep theirs in one slab. Any other metric (summaries, histograms,
// exemplars, created timestamps, unknown fields, several values) keeps its
// message in full, by pointer.
//
// A record answers as the message it stands for (Proto, AppendProto): no
// byte of any answer depends on how a metric is stored. Records are never
// modified once stored; their addresses identify them (the exposition's
// caches share encoded bytes by metric).
type Metric struct {
	labels []*dto.LabelPair // sorted by name once stored; shared
	value  float64
	ts     int64
	// full is the metric's message when it is not of the usual shape
	// (then only labels, which are full's, is set beside it).
	full *dto.Metric
	kind metricKind
}

// metricKind says which value message a record's metric holds and which
// of its optional fields are present.
type metricKind uint8

const (
	kindNone    metricKind = iota // no value message
	kindGauge                     // Gauge{value}
	kindCounter                   // Counter{value}
	kindUntyped                   // Untyped{value}
	kindMask    metricKind = 3

	hasValue     metricKind = 1 << 2 // the value message holds its value
	hasTimestamp metricKind = 1 << 3 // timestamp_ms is set
)

// recordOf returns the record of m: flat if m is of the usual shape, m
// itself kept otherwise. The record shares m's label pairs.
func recordOf(m *dto.Metric) Metric {
	r := Metric{labels: m.Label}
	if !flatShape(m) {
		r.full = m
		return r
	}
	var v *float64
	switch {
	case m.Gauge != nil:
		r.kind, v = kindGauge, m.Gauge.Value
	case m.Counter != nil:
		r.kind, v = kindCounter, m.Counter.Value
	case m.Untyped != nil:
		r.kind, v = kindUntyped, m.Untyped.Value
	}
	if v != nil {
		r.kind |= hasValue
		r.value = *v
	}
	if m.TimestampMs != nil {
		r.kind |= hasTimestamp
		r.ts = *m.TimestampMs
	}
	return r
}

// flatShape reports whether a record can hold m without its message: at
// most one of a gauge, counter or untyped value message holding at most
// its value, label pairs of a name and a value, no other field, nothing
// unknown to this build.
func flatShape(m *dto.Metric) bool {
	if m.Summary != nil || m.Histogram != nil || unknown(m) {
		return false
	}
	values := 0
	if g := m.Gauge; g != nil {
		if values++; unknown(g) {
			return false
		}
	}
	if c := m.Counter; c != nil {
		if values++; c.Exemplar != nil || c.CreatedTimestamp != nil || unknown(c) {
			return false
		}
	}
	if u := m.Untyped; u != nil {
		if values++; unknown(u) {
			return false
		}
	}
	if values > 1 {
		return false
	}
	for _, lp := range m.Label {
		if lp == nil || unknown(lp) {
			return false
		}
	}
	return true
}

// unknown reports whether a message carries fields unknown to this build.
func unknown(m proto.Message) bool { return len(m.ProtoReflect().GetUnknown()) > 0 }

// Labels returns the metric's label pairs, shared: callers must not modify
// them.
func (m *Metric) Labels() []*dto.LabelPair { return m.labels }

// HasTimestamp reports whether the metric carries a timestamp.
func (m *Metric) HasTimestamp() bool {
	if m.full != nil {
		return m.full.TimestampMs != nil
	}
	return m.kind&hasTimestamp != 0
}

// Proto returns the metric as a message: the message kept, or one built
// from the record that shares its label pairs and value. Callers must not
// modify it.
func (m *Metric) Proto() *dto.Metric {
	if m.full != nil {
		return m.full
	}
	out := &dto.Metric{Label: m.labels}
	var v *float64
	if m.kind&hasValue != 0 {
		v = &m.value
	}
	switch m.kind & kindMask {
	case kindGauge:
		out.Gauge = &dto.Gauge{Value: v}
	case kindCounter:
		out.Counter = &dto.Counter{Value: v}
	case kindUntyped:
		out.Untyped = &dto.Untyped{Value: v}
	}
	if m.kind&hasTimestamp != 0 {
		out.TimestampMs = &m.ts
	}
	return out
}

// String is the message's text form, as error messages quote a metric.
func (m *Metric) String() string { return m.Proto().String() }

// Sample returns the value of the metric as one sample line of a family of
// type t (a gauge's, counter's or untyped value, 0 if unset), and whether
// the metric is one: it holds the value message of t.
func (m *Metric) Sample(t dto.MetricType) (float64, bool) {
	if pm := m.full; pm != nil {
		switch {
		case t == dto.MetricType_GAUGE && pm.Gauge != nil:
			return pm.Gauge.GetValue(), true
		case t == dto.MetricType_COUNTER && pm.Counter != nil:
			return pm.Counter.GetValue(), true
		case t == dto.MetricType_UNTYPED && pm.Untyped != nil:
			return pm.Untyped.GetValue(), true
		}
		return 0, false
	}
	switch k := m.kind & kindMask; {
	case t == dto.MetricType_GAUGE && k == kindGauge,
		t == dto.MetricType_COUNTER && k == kindCounter,
		t == dto.MetricType_UNTYPED && k == kindUntyped:
		return m.value, true
	}
	return 0, false
}

// holds reports whether the metric holds the value message of type t, as
// the consistency check requires of a family's metrics.
func (m *Metric) holds(t dto.MetricType) bool {
	if pm := m.full; pm != nil {
		switch t {
		case dto.MetricType_GAUGE:
			return pm.Gauge != nil
		case dto.MetricType_COUNTER:
			return pm.Counter != nil
		case dto.MetricType_SUMMARY:
			return pm.Summary != nil
		case dto.MetricType_HISTOGRAM:
			return pm.Histogram != nil
		case dto.MetricType_UNTYPED:
			return pm.Untyped != nil
		}
		return true
	}
	switch t {
	case dto.MetricType_GAUGE:
		return m.kind&kindMask == kindGauge
	case dto.MetricType_COUNTER:
		return m.kind&kindMask == kindCounter
	case dto.MetricType_UNTYPED:
		return m.kind&kindMask == kindUntyped
	case dto.MetricType_SUMMARY, dto.MetricType_HISTOGRAM:
		return false
	}
	return true
}

// valueFields are the Metric message's fields (familydecode.go's numbers)
// of the value messages a record holds, by kind.
var valueFields = [...]protowire.Number{kindGauge: metricGauge, kindCounter: metricCounter, kindUntyped: metricUntyped}

// deterministic is how metrics kept in full are encoded.
var deterministic = proto.MarshalOptions{Deterministic: true}

// ProtoSize returns the size of the metric's message as AppendProto writes
// it.
func (m *Metric) ProtoSize() int {
	if m.full != nil {
		return deterministic.Size(m.full)
	}
	n := 0
	for _, lp := range m.labels {
		s := labelPairSize(lp)
		n += protowire.SizeTag(metricLabel) + protowire.SizeVarint(uint64(s)) + s
	}
	if k := m.kind & kindMask; k != kindNone {
		s := 0
		if m.kind&hasValue != 0 {
			s = protowire.SizeTag(valueField) + protowire.SizeFixed64()
		}
		n += protowire.SizeTag(valueFields[k]) + protowire.SizeVarint(uint64(s)) + s
	}
	if m.kind&hasTimestamp != 0 {
		n += protowire.SizeTag(metricTimestampMs) + protowire.SizeVarint(uint64(m.ts))
	}
	return n
}

// labelPairSize is the size of a LabelPair message as AppendProto writes it.
func labelPairSize(lp *dto.LabelPair) int {
	return stringFieldSize(labelName, lp.Name) + stringFieldSize(labelValue, lp.Value)
}

// stringFieldSize is the size of an optional string field holding *v (0
// when v is nil: the field is absent).
func stringFieldSize(num protowire.Number, v *string) int {
	if v == nil {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(*v))
}

// appendStringField appends an optional string field holding *v, if v is
// set.
func appendStringField(b []byte, num protowire.Number, v *string) []byte {
	if v == nil {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, *v)
}

// AppendProto appends the metric's message: the bytes proto's
// deterministic marshalling gives Proto() (fields in number order).
func (m *Metric) AppendProto(b []byte) ([]byte, error) {
	if m.full != nil {
		out, err := deterministic.MarshalAppend(b, m.full)
		if err != nil {
			return nil, fmt.Errorf("encode a metric: %w", err)
		}
		return out, nil
	}
	for _, lp := range m.labels {
		b = protowire.AppendTag(b, metricLabel, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(labelPairSize(lp)))
		b = appendStringField(b, labelName, lp.Name)
		b = appendStringField(b, labelValue, lp.Value)
	}
	if k := m.kind & kindMask; k != kindNone {
		b = protowire.AppendTag(b, valueFields[k], protowire.BytesType)
		if m.kind&hasValue == 0 {
			b = protowire.AppendVarint(b, 0)
		} else {
			b = protowire.AppendVarint(b, uint64(protowire.SizeTag(valueField)+protowire.SizeFixed64()))
			b = protowire.AppendTag(b, valueField, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, math.Float64bits(m.value))
		}
	}
	if m.kind&hasTimestamp != 0 {
		b = protowire.AppendTag(b, metricTimestampMs, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.ts))
	}
	return b, nil
}

// GaugeValue returns the value of the metric's gauge (0 if it has none, as
// the message's GetGauge().GetValue()).
func (m *Metric) GaugeValue() float64 {
	if m.full != nil {
		return m.full.GetGauge().GetValue()
	}
	if m.kind&kindMask == kindGauge {
		return m.value
	}
	return 0
}

// NewMetric returns the record of m (sharing m's label pairs, and m itself
// if it is not of the usual shape).
func NewMetric(m *dto.Metric) *Metric {
	r := recordOf(m)
	return &r
}
