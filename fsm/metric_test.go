package fsm

import (
	"bytes"
	"math"
	"math/rand"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// randomMetric is a metric message of a random shape: every value message,
// none or several, with and without its value; label pairs lacking a name
// or a value; timestamps; and, now and then, what only the kept message
// can hold (exemplars, created timestamps, summaries, histograms, unknown
// fields).
func randomMetric(r *rand.Rand) *dto.Metric {
	m := &dto.Metric{}
	strs := []string{"", "a", "job", "é", "x\x00y", "0.5"}
	for n := r.Intn(4); n > 0; n-- {
		lp := &dto.LabelPair{}
		if r.Intn(6) > 0 {
			lp.Name = proto.String(strs[r.Intn(len(strs))])
		}
		if r.Intn(6) > 0 {
			lp.Value = proto.String(strs[r.Intn(len(strs))])
		}
		m.Label = append(m.Label, lp)
	}
	values := []float64{0, 1, -1, 1.5, math.Inf(1), math.NaN(), math.Copysign(0, -1), 1e300}
	value := func() *float64 {
		if r.Intn(5) == 0 {
			return nil
		}
		return proto.Float64(values[r.Intn(len(values))])
	}
	switch r.Intn(5) {
	case 0:
		m.Gauge = &dto.Gauge{Value: value()}
	case 1:
		m.Counter = &dto.Counter{Value: value()}
	case 2:
		m.Untyped = &dto.Untyped{Value: value()}
	case 3: // several, or none
		if r.Intn(2) == 0 {
			m.Gauge, m.Counter = &dto.Gauge{Value: value()}, &dto.Counter{Value: value()}
		}
	}
	if r.Intn(4) == 0 {
		m.TimestampMs = proto.Int64([]int64{0, 1, -1, 1 << 50}[r.Intn(4)])
	}
	switch r.Intn(12) {
	case 0:
		m.Counter = &dto.Counter{Value: value(), Exemplar: &dto.Exemplar{Value: proto.Float64(1)}}
	case 1:
		m.Counter = &dto.Counter{Value: value(), CreatedTimestamp: timestamppb.New(timestamppb.Now().AsTime())}
	case 2:
		m.Summary = &dto.Summary{SampleCount: proto.Uint64(1)}
	case 3:
		m.Histogram = &dto.Histogram{SampleCount: proto.Uint64(2)}
	case 4:
		m.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	case 5:
		if m.Gauge != nil {
			m.Gauge.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1))
		}
	}
	return m
}

// TestRecordAnswersAsItsMessage checks that a stored record stands for the
// message it was made of: the message it gives back equals it, its encoding
// has the bytes and size of proto's deterministic marshalling, and its
// accessors answer as the message's getters. Shapes a record cannot hold
// keep their message.
func TestRecordAnswersAsItsMessage(t *testing.T) {
	r := rand.New(rand.NewSource(17))
	flat := 0
	types := []dto.MetricType{dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_SUMMARY, dto.MetricType_UNTYPED, dto.MetricType_HISTOGRAM}
	for i := 0; i < 20000; i++ {
		m := randomMetric(r)
		rec := recordOf(m)
		if rec.full == nil {
			flat++
		}
		if got := rec.Proto(); !proto.Equal(got, m) {
			t.Fatalf("record of %v gives back %v", m, got)
		}
		want, err := deterministic.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rec.AppendProto([]byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[len("prefix"):], want) || rec.ProtoSize() != len(want) {
			t.Fatalf("record of %v encodes to %x (size %d), proto to %x", m, got[len("prefix"):], rec.ProtoSize(), want)
		}
		if rec.HasTimestamp() != (m.TimestampMs != nil) || math.Float64bits(rec.GaugeValue()) != math.Float64bits(m.GetGauge().GetValue()) {
			t.Fatalf("record of %v: timestamp %v, gauge %v", m, rec.HasTimestamp(), rec.GaugeValue())
		}
		for _, typ := range types {
			holds := map[dto.MetricType]bool{
				dto.MetricType_COUNTER: m.Counter != nil, dto.MetricType_GAUGE: m.Gauge != nil,
				dto.MetricType_SUMMARY: m.Summary != nil, dto.MetricType_UNTYPED: m.Untyped != nil,
				dto.MetricType_HISTOGRAM: m.Histogram != nil,
			}[typ]
			if rec.holds(typ) != holds {
				t.Fatalf("record of %v holds a %s: %v", m, typ, rec.holds(typ))
			}
			var sample *float64 // the one-line sample of a family of typ
			switch {
			case typ == dto.MetricType_GAUGE && m.Gauge != nil:
				sample = proto.Float64(m.Gauge.GetValue())
			case typ == dto.MetricType_COUNTER && m.Counter != nil:
				sample = proto.Float64(m.Counter.GetValue())
			case typ == dto.MetricType_UNTYPED && m.Untyped != nil:
				sample = proto.Float64(m.Untyped.GetValue())
			}
			if v, ok := rec.Sample(typ); ok != (sample != nil) || ok && math.Float64bits(v) != math.Float64bits(*sample) {
				t.Fatalf("record of %v as a %s sample: %v %v", m, typ, v, ok)
			}
		}
	}
	if flat < 10000 {
		t.Errorf("only %d of 20000 metrics flat: the test covers too little of the record", flat)
	}
}

// TestStoredMetricIsARecord checks what the records are for: a pushed
// gauge is stored without its message, in the slab of its command.
func TestStoredMetricIsARecord(t *testing.T) {
	mfs := parseText(t, "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 2\n# TYPE b counter\nb 3\n")
	slab := newMetricSlab(mfs)
	whole := slab
	a, b := familyOf(mfs[0], 1, &slab), familyOf(mfs[1], 1, &slab)
	if len(slab) != 0 {
		t.Errorf("%d records of the slab left over", len(slab))
	}
	for _, f := range []Family{a, b} {
		for i := range f.Metrics() {
			if f.Metrics()[i].full != nil {
				t.Errorf("%s: metric %d kept as a message", f.Name(), i)
			}
		}
	}
	if len(whole) != 3 || &whole[0] != &a.Metrics()[0] || &whole[2] != &b.Metrics()[0] || cap(a.Metrics()) != 2 {
		t.Errorf("the families' records are not cut from one slab, each to its length")
	}
}

// TestRecordKnowsEveryField pins the fields of the messages a record holds
// without its message: flatShape lists them by hand, so a field a new
// client_model adds would be dropped from a record without a word. When
// this fails, teach flatShape (and the record) the new field, then the
// count here.
func TestRecordKnowsEveryField(t *testing.T) {
	for _, c := range []struct {
		msg    proto.Message
		fields int
	}{
		{&dto.Metric{}, 7}, // label, gauge, counter, summary, untyped, histogram, timestamp_ms
		{&dto.Gauge{}, 1},
		{&dto.Counter{}, 3}, // value, exemplar, created_timestamp
		{&dto.Untyped{}, 1},
		{&dto.LabelPair{}, 2},
	} {
		d := c.msg.ProtoReflect().Descriptor()
		if n := d.Fields().Len(); n != c.fields {
			t.Errorf("%s has %d fields, flatShape knows %d", d.FullName(), n, c.fields)
		}
	}
}
