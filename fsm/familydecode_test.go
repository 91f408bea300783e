package fsm

import (
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// familyDecodeSeeds are metric families of every shape: the fast ones and
// every way out of the fast path.
func familyDecodeSeeds(t testing.TB) [][]byte {
	t.Helper()
	str := proto.String
	f64 := proto.Float64
	gauge, counter, untyped, summary, hist := dto.MetricType_GAUGE, dto.MetricType_COUNTER, dto.MetricType_UNTYPED, dto.MetricType_SUMMARY, dto.MetricType_HISTOGRAM
	lp := func(n, v string) *dto.LabelPair { return &dto.LabelPair{Name: str(n), Value: str(v)} }
	fams := []*dto.MetricFamily{
		{Name: str("g"), Help: str("help"), Type: &gauge, Metric: []*dto.Metric{
			{Label: []*dto.LabelPair{lp("a", "1"), lp("b", "")}, Gauge: &dto.Gauge{Value: f64(1.5)}},
			{Gauge: &dto.Gauge{}, TimestampMs: proto.Int64(-7)},
		}},
		{Name: str("c"), Type: &counter, Metric: []*dto.Metric{{Counter: &dto.Counter{Value: f64(3)}}}},
		{Name: str("u"), Type: &untyped, Metric: []*dto.Metric{{Untyped: &dto.Untyped{Value: f64(-0.0)}, Label: []*dto.LabelPair{{Name: str("only_name")}}}}},
		{Name: str("")},
		{},
		{Name: str("s"), Type: &summary, Metric: []*dto.Metric{{Summary: &dto.Summary{SampleCount: proto.Uint64(1), Quantile: []*dto.Quantile{{Quantile: f64(0.5), Value: f64(1)}}}}}},
		{Name: str("h"), Type: &hist, Metric: []*dto.Metric{{Histogram: &dto.Histogram{SampleCount: proto.Uint64(1), Bucket: []*dto.Bucket{{UpperBound: f64(1), CumulativeCount: proto.Uint64(1)}}}}}},
		{Name: str("e"), Type: &counter, Metric: []*dto.Metric{{Counter: &dto.Counter{Value: f64(1), Exemplar: &dto.Exemplar{Value: f64(1)}, CreatedTimestamp: timestamppb.New(timestamppb.Now().AsTime())}}}},
		{Name: str("unit"), Unit: str("seconds")},
	}
	var raws [][]byte
	for _, mf := range fams {
		b, err := proto.Marshal(mf)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, b)
	}
	// A field proto would merge (a gauge twice), a scalar given twice, an
	// unknown field, a type outside the enum, a wrong wire type.
	g1 := protowire.AppendBytes(protowire.AppendTag(nil, metricGauge, protowire.BytesType), []byte{0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f})
	m := append(append([]byte(nil), g1...), g1...)
	raws = append(raws,
		protowire.AppendBytes(protowire.AppendTag(nil, mfMetric, protowire.BytesType), m),
		append(protowire.AppendString(protowire.AppendTag(nil, mfName, protowire.BytesType), "x"), raws[0]...),
		protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1),
		protowire.AppendVarint(protowire.AppendTag(nil, mfType, protowire.VarintType), 9),
		protowire.AppendFixed32(protowire.AppendTag(nil, mfName, protowire.Fixed32Type), 1),
		[]byte{0xff},
	)
	return raws
}

// TestDecodeFamiliesEqualsProto: every seed, alone and all together,
// decodes to what proto.Unmarshal gives.
func TestDecodeFamiliesEqualsProto(t *testing.T) {
	seeds := familyDecodeSeeds(t)
	for i, raw := range seeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			compareFamilyDecode(t, [][]byte{raw}, familyDecoding{})
			compareFamilyDecode(t, [][]byte{raw}, testDecoding)
		})
	}
	var valid [][]byte
	for _, raw := range seeds {
		if proto.Unmarshal(raw, &dto.MetricFamily{}) == nil {
			valid = append(valid, raw)
		}
	}
	compareFamilyDecode(t, valid, familyDecoding{})
	compareFamilyDecode(t, valid, testDecoding)
}

// testDecoding shares two label pairs (one of them in the seeds) and
// leaves room for two more labels per metric.
var testDecoding = familyDecoding{
	shared: []*dto.LabelPair{
		{Name: proto.String("a"), Value: proto.String("1")},
		{Name: proto.String("job"), Value: proto.String("j")},
	},
	spareLabels: 2,
}

// FuzzDecodeFamilies: decodeFamilies on arbitrary bytes, as three families,
// agrees with proto.Unmarshal on each (error or message).
func FuzzDecodeFamilies(f *testing.F) {
	seeds := familyDecodeSeeds(f)
	for i := range seeds {
		f.Add(seeds[i], seeds[(i+1)%len(seeds)], seeds[(i+2)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		compareFamilyDecode(t, [][]byte{a, b, c}, familyDecoding{})
		compareFamilyDecode(t, [][]byte{a, b, c}, testDecoding)
	})
}

func compareFamilyDecode(t *testing.T, raws [][]byte, how familyDecoding) {
	t.Helper()
	want := make([]*dto.MetricFamily, len(raws))
	var wantErr error
	for i, raw := range raws {
		want[i] = &dto.MetricFamily{}
		if err := proto.Unmarshal(raw, want[i]); err != nil && wantErr == nil {
			wantErr = err
		}
	}
	got, err := decodeFamilies(raws, how)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("decodeFamilies error %v, proto.Unmarshal error %v", err, wantErr)
	}
	if err != nil {
		return
	}
	compareStoredDecode(t, raws, how, want)
	for i := range raws {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("family %d: got %v, want %v", i, got[i], want[i])
		}
		// Encoding again gives the same bytes as proto's own message.
		gb, err1 := proto.MarshalOptions{Deterministic: true}.Marshal(got[i])
		wb, err2 := proto.MarshalOptions{Deterministic: true}.Marshal(want[i])
		if err1 != nil || err2 != nil || string(gb) != string(wb) {
			t.Fatalf("family %d: encodes to %x (%v), proto's to %x (%v)", i, gb, err1, wb, err2)
		}
	}
}

// compareStoredDecode checks decodeStoredFamilies against proto's messages
// (want, decoded without error): every family gives back its message (but
// the family's own unknown fields, which a Family does not keep) and
// encodes to proto's bytes of it.
func compareStoredDecode(t *testing.T, raws [][]byte, how familyDecoding, want []*dto.MetricFamily) {
	t.Helper()
	times := make([]int64, len(raws))
	for i := range times {
		times[i] = int64(i) + 1
	}
	got, err := decodeStoredFamilies(raws, times, how)
	if err != nil {
		t.Fatalf("decodeStoredFamilies: %v", err)
	}
	for i := range raws {
		w := proto.Clone(want[i]).(*dto.MetricFamily)
		w.ProtoReflect().SetUnknown(nil)
		f := &got[i]
		if f.TimeUnixNano != times[i] || !proto.Equal(f.MF(), w) {
			t.Fatalf("stored family %d: got %v at %d, want %v", i, f.MF(), f.TimeUnixNano, w)
		}
		size, sizes := familyMessageSize(f, nil)
		gb, err := appendFamilyMessage(nil, f, sizes)
		wb, err2 := proto.MarshalOptions{Deterministic: true}.Marshal(w)
		if err != nil || err2 != nil || string(gb) != string(wb) || size != len(wb) {
			t.Fatalf("stored family %d: encodes to %x (%v), proto's to %x (%v)", i, gb, err, wb, err2)
		}
	}
}

// TestDecodedFamiliesDoNotShareSlices: families and metrics decoded into
// one slab may be appended to (sanitizing adds the grouping labels)
// without changing their neighbours.
func TestDecodedFamiliesDoNotShareSlices(t *testing.T) {
	mfs := parseText(t, "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 2\n# TYPE b gauge\nb{y=\"3\"} 3\n")
	var raws [][]byte
	for _, mf := range mfs {
		b, err := proto.Marshal(mf)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, b)
	}
	for _, how := range []familyDecoding{{}, testDecoding} {
		checkNoSharedSlices(t, mfs, raws, how)
	}
}

func checkNoSharedSlices(t *testing.T, mfs []*dto.MetricFamily, raws [][]byte, how familyDecoding) {
	got, err := decodeFamilies(raws, how)
	if err != nil {
		t.Fatal(err)
	}
	a, b := got[0], got[1]
	a.Metric = append(a.Metric, &dto.Metric{})
	a.Metric[0].Label = append(a.Metric[0].Label, &dto.LabelPair{Name: proto.String("job"), Value: proto.String("j")})
	if len(b.Metric) != 1 || b.Metric[0].GetLabel()[0].GetName() != "y" {
		t.Fatalf("appending to family a changed family b: %v", b)
	}
	if l := a.Metric[1].GetLabel(); len(l) != 1 || l[0].GetValue() != "2" {
		t.Fatalf("appending to a's first metric changed its second: %v", l)
	}
	if !proto.Equal(mfs[1], b) {
		t.Fatalf("family b: got %v, want %v", b, mfs[1])
	}
	if how.spareLabels > 0 {
		m := b.Metric[0]
		allocs := testing.AllocsPerRun(1, func() {
			m.Label = append(m.Label[:1], how.shared[0], how.shared[1])
		})
		if allocs != 0 {
			t.Fatalf("adding %d labels allocated", how.spareLabels)
		}
	}
}

// TestDecodeFamiliesSharesPairs: a label pair equal to a shared one is that
// pair, and one that differs in its value is not.
func TestDecodeFamiliesSharesPairs(t *testing.T) {
	mf := parseText(t, "m{a=\"1\",job=\"k\"} 1\n")[0]
	raw, err := proto.Marshal(mf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeFamilies([][]byte{raw}, testDecoding)
	if err != nil {
		t.Fatal(err)
	}
	labels := got[0].Metric[0].Label
	if labels[0] != testDecoding.shared[0] {
		t.Errorf("a=\"1\" is not the shared pair")
	}
	if labels[1] == testDecoding.shared[1] || labels[1].GetValue() != "k" {
		t.Errorf("job=\"k\" decoded as %v", labels[1])
	}
}

// TestDecodeFamiliesAllocatesPerCommand: a push of ten gauge families, one
// labelled sample each, decodes in a fixed number of allocations, not
// several per sample (proto.Unmarshal makes about ninety).
func TestDecodeFamiliesAllocatesPerCommand(t *testing.T) {
	var raws [][]byte
	for i := range 10 {
		mf := parseText(t, fmt.Sprintf("# TYPE m%d gauge\nm%d{kind=\"bench\"} %d\n", i, i, i))[0]
		b, err := proto.Marshal(mf)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, b)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decodeFamilies(raws, familyDecoding{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 20 {
		t.Fatalf("%v allocations for ten families", allocs)
	}
	t.Logf("%v allocations for ten families", allocs)
}
