package httpapi

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// cachedFormats are the formats renderCache serves, every escaping scheme.
var cachedFormats = func() []expfmt.Format {
	var out []expfmt.Format
	for _, esc := range []string{"", "; escaping=allow-utf-8", "; escaping=underscores", "; escaping=dots", "; escaping=values"} {
		out = append(out,
			expfmt.Format("text/plain; version=0.0.4; charset=utf-8"+esc),
			expfmt.Format("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"+esc))
	}
	return out
}()

// expfmtFamily is the reference: the family as expfmt's encoder writes it
// (what promhttp sends).
func expfmtFamily(t *testing.T, f expfmt.Format, mf *dto.MetricFamily) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := expfmt.NewEncoder(&buf, f).Encode(mf); err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	return buf.Bytes()
}

var (
	testValues      = []float64{0, math.Copysign(0, -1), 1, -1, 2, 0.5, 1e6, 1e21, 1.5e-7, -3.25, 123456789, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1), math.NaN()}
	testLabelValues = []string{"", "a", "0", "x y", `back\slash`, "new\nline", `"quoted"`, "ünïcödé", "日本", "a=b,c", "{}", "\\n"}
	testLabelNames  = []string{"job", "instance", "x", "le_x", "a:b", "__name__", "dotted.name", "ü", "0digit"}
)

func randomMetric(rng *rand.Rand, typ dto.MetricType, labelNames []string) *dto.Metric {
	m := &dto.Metric{}
	for _, n := range labelNames {
		m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(n), Value: proto.String(testLabelValues[rng.IntN(len(testLabelValues))])})
	}
	sort.Slice(m.Label, func(i, j int) bool { return m.Label[i].GetName() < m.Label[j].GetName() })
	v := testValues[rng.IntN(len(testValues))]
	switch typ {
	case dto.MetricType_GAUGE:
		m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
	case dto.MetricType_COUNTER:
		m.Counter = &dto.Counter{Value: proto.Float64(v)}
	case dto.MetricType_UNTYPED:
		m.Untyped = &dto.Untyped{Value: proto.Float64(v)}
	case dto.MetricType_SUMMARY:
		m.Summary = &dto.Summary{SampleCount: proto.Uint64(3), SampleSum: proto.Float64(v), Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(v)}}}
	case dto.MetricType_HISTOGRAM:
		m.Histogram = &dto.Histogram{SampleCount: proto.Uint64(2), SampleSum: proto.Float64(v), Bucket: []*dto.Bucket{{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(1)}}}
	}
	return m
}

// TestMetricEncoderMatchesExpfmt checks the direct encoding of single
// metrics against expfmt for random values, label values that need
// escaping, label names that need quoting or escaping, every type and
// every cached format.
func TestMetricEncoderMatchesExpfmt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	types := []dto.MetricType{dto.MetricType_GAUGE, dto.MetricType_COUNTER, dto.MetricType_UNTYPED, dto.MetricType_SUMMARY, dto.MetricType_HISTOGRAM}
	names := []string{"m", "name_with:colon", "dotted.metric", "ü_metric"}
	for i := 0; i < 3000; i++ {
		typ := types[rng.IntN(len(types))]
		var labelNames []string
		for _, n := range testLabelNames {
			if rng.IntN(3) == 0 {
				labelNames = append(labelNames, n)
			}
		}
		mf := &dto.MetricFamily{Name: proto.String(names[rng.IntN(len(names))]), Type: typ.Enum(), Help: proto.String("help \\ text\nmore")}
		for n := rng.IntN(3) + 1; n > 0; n-- {
			mf.Metric = append(mf.Metric, randomMetric(rng, typ, labelNames))
		}
		for _, f := range cachedFormats {
			rf, err := renderFamily(keyOf(f), exposedOf(mf), nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if want := expfmtFamily(t, f, mf); !bytes.Equal(rf.bytes(), want) {
				t.Fatalf("%s, family %v:\n got %q\nwant %q", f, mf, rf.bytes(), want)
			}
		}
	}
}

// TestRenderFamilyReusesChunks renders random successive versions of a
// family (metrics added, removed, replaced, ties in label values) from the
// previous version and checks the bytes equal a fresh encoding by expfmt,
// and that unchanged metrics were copied, not encoded again.
func TestRenderFamilyReusesChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range cachedFormats {
		var prev *renderedFamily
		var metrics []*dto.Metric
		for version := 0; version < 60; version++ {
			next := append([]*dto.Metric(nil), metrics...)
			for n := rng.IntN(6); n > 0; n-- {
				switch op := rng.IntN(3); {
				case op == 0 || len(next) == 0: // add (label values often tie)
					labels := []string{"instance", "job"}
					if rng.IntN(2) == 0 {
						labels = []string{"instance", "zz"}
					}
					m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(float64(rng.IntN(100)))}}
					for _, l := range labels {
						m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l), Value: proto.String(fmt.Sprint(rng.IntN(5)))})
					}
					next = append(next, m)
				case op == 1: // remove
					k := rng.IntN(len(next))
					next = append(next[:k], next[k+1:]...)
				default: // replace with a new value, same labels
					k := rng.IntN(len(next))
					next[k] = &dto.Metric{Label: next[k].Label, Gauge: &dto.Gauge{Value: proto.Float64(float64(rng.IntN(100)))}}
				}
			}
			sort.SliceStable(next, func(i, j int) bool { return fsm.LabelsLess(next[i].Label, next[j].Label) })
			metrics = next
			if len(metrics) == 0 {
				continue
			}
			mf := &dto.MetricFamily{Name: proto.String("g"), Help: proto.String("h"), Type: dto.MetricType_GAUGE.Enum(), Metric: metrics}
			rf, err := renderFamily(keyOf(f), exposedOf(mf), prev, true)
			if err != nil {
				t.Fatal(err)
			}
			if want := expfmtFamily(t, f, mf); !bytes.Equal(rf.bytes(), want) {
				t.Fatalf("%s version %d:\n got %q\nwant %q", f, version, rf.bytes(), want)
			}
			for i, m := range mf.Metric {
				one := &dto.MetricFamily{Name: mf.Name, Type: mf.Type, Metric: []*dto.Metric{m}}
				want, _ := metricChunk(f.FormatType(), f.ToEscapingScheme(), one, m)
				if !bytes.Equal(rf.chunk(i), want) {
					t.Fatalf("%s version %d: chunk %d is %q, want %q", f, version, i, rf.chunk(i), want)
				}
			}
			prev = rf
		}
	}
}

// TestRenderFamilyCopiesSharedMetrics checks that a new version of a
// family encodes only what changed: the bytes of shared metrics are
// copied from the previous version.
func TestRenderFamilyCopiesSharedMetrics(t *testing.T) {
	var ms []*dto.Metric
	for i := 0; i < 100; i++ {
		ms = append(ms, &dto.Metric{Label: []*dto.LabelPair{{Name: proto.String("i"), Value: proto.String(fmt.Sprintf("%03d", i))}}, Gauge: &dto.Gauge{Value: proto.Float64(float64(i))}})
	}
	f := expfmt.Format("text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
	v1 := &dto.MetricFamily{Name: proto.String("g"), Type: dto.MetricType_GAUGE.Enum(), Metric: ms}
	r1, err := renderFamily(keyOf(f), exposedOf(v1), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	// Poison the previous bytes of every metric: a copy shows the poison,
	// a fresh encoding does not.
	for i := range ms {
		c := r1.chunk(i)
		c[0] = 'X'
	}
	changed := &dto.Metric{Label: ms[50].Label, Gauge: &dto.Gauge{Value: proto.Float64(-5)}}
	added := &dto.Metric{Label: []*dto.LabelPair{{Name: proto.String("i"), Value: proto.String("050a")}}, Gauge: &dto.Gauge{Value: proto.Float64(7)}}
	v2ms := append(append(append([]*dto.Metric(nil), ms[:50]...), changed, added), ms[52:]...) // 51 removed
	v2 := &dto.MetricFamily{Name: proto.String("g"), Type: dto.MetricType_GAUGE.Enum(), Metric: v2ms}
	r2, err := renderFamily(keyOf(f), exposedOf(v2), r1, true)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range v2ms {
		fresh := m == changed || m == added
		if got := r2.chunk(i)[0] == 'X'; got == fresh {
			t.Errorf("metric %d (fresh %v): chunk %q", i, fresh, r2.chunk(i))
		}
	}
}

// records are the stored records of test metrics, by message: a family
// made again of some of the same messages holds the same records, as a
// new exposition holds the same stored metrics.
var records = struct {
	sync.Mutex
	of map[*dto.Metric]*fsm.Metric
}{of: map[*dto.Metric]*fsm.Metric{}}

// exposedOf returns mf as the exposition holds it: its header and the
// records of its metrics.
func exposedOf(mf *dto.MetricFamily) *fsm.ExposedFamily {
	records.Lock()
	defer records.Unlock()
	ef := &fsm.ExposedFamily{Header: &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Unit: mf.Unit}}
	for _, m := range mf.Metric {
		r := records.of[m]
		if r == nil {
			r = fsm.NewMetric(m)
			records.of[m] = r
		}
		ef.Metrics = append(ef.Metrics, r)
	}
	return ef
}

// bytes returns the encoded family in one piece.
func (rf *renderedFamily) bytes() []byte {
	var b []byte
	for _, p := range rf.parts {
		b = append(b, p...)
	}
	return b
}

// chunk returns the bytes of metric i of rf.from.
func (rf *renderedFamily) chunk(i int) []byte {
	k := sort.Search(len(rf.starts), func(k int) bool { return rf.starts[k] > i }) - 1
	return rf.segs[k].chunkIn(rf.segs[k].data, i-rf.starts[k])
}

// segmentSet returns the segments of rf, to tell which of another
// version's segments it shares.
func segmentSet(rf *renderedFamily) map[*segment]bool {
	set := make(map[*segment]bool, len(rf.segs))
	for _, s := range rf.segs {
		set[s] = true
	}
	return set
}

// renderedBytes returns the encoded family in one piece, decompressed
// when it was rendered compressed only.
func renderedBytes(t *testing.T, rf *renderedFamily) []byte {
	t.Helper()
	if rf.plain {
		return rf.bytes()
	}
	for _, s := range rf.segs {
		if s.data != nil || s.gz == nil {
			t.Fatal("a segment of a family rendered compressed only keeps its plain bytes or has no compressed ones")
		}
	}
	gz, err := rf.gzipped()
	if err != nil {
		t.Fatal(err)
	}
	return gunzip(t, gz)
}

// TestRenderFamilySharesSegments changes a family of 5,000 metrics version
// after version (metrics replaced, removed, added): every version's bytes
// equal expfmt's, it is cut into the same segments as a fresh encoding of
// it would be (so segments do not fragment with churn), and it shares every
// segment of the previous version whose metrics it holds unchanged. So
// does a family rendered compressed only (without its plain bytes), and
// every few versions the family is rendered the other way, sharing
// nothing with the version before.
func TestRenderFamilySharesSegments(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, f := range []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeProtoDelim)} {
		for _, plain := range []bool{true, false} {
			k := keyOf(f)
			mf := gaugeFamily(5000, func(i int) float64 { return float64(i) })
			prev, err := renderFamily(k, exposedOf(mf), nil, plain)
			if err != nil {
				t.Fatal(err)
			}
			if len(prev.segs) < 5000/segmentMetrics/4 {
				t.Fatalf("%s: %d segments for 5,000 metrics", f, len(prev.segs))
			}
			for version := 0; version < 30; version++ {
				// Every seventh version is rendered the other way.
				asked := plain != (version%7 == 3)
				ms := slices.Clone(mf.Metric)
				changed := map[*dto.Metric]bool{}
				ops := rng.IntN(4) + 1
				for range ops {
					i := rng.IntN(len(ms))
					if rng.IntN(4) == 0 {
						i = len(ms) - 1 // after the last metric
					}
					switch rng.IntN(3) {
					case 0:
						ms[i] = &dto.Metric{Label: ms[i].Label, Gauge: &dto.Gauge{Value: proto.Float64(rng.Float64())}}
						changed[ms[i]] = true
					case 1:
						ms = slices.Delete(ms, i, i+1)
					default:
						m := &dto.Metric{
							Label: []*dto.LabelPair{{Name: proto.String("instance"), Value: proto.String(fmt.Sprintf("%s+%d", ms[i].Label[0].GetValue(), version))}, {Name: proto.String("job"), Value: proto.String("j")}},
							Gauge: &dto.Gauge{Value: proto.Float64(1)},
						}
						ms = slices.Insert(ms, i+1, m)
						changed[m] = true
					}
				}
				mf = &dto.MetricFamily{Name: mf.Name, Type: mf.Type, Metric: ms}
				next, err := renderFamily(k, exposedOf(mf), prev, asked)
				if err != nil {
					t.Fatal(err)
				}
				if want := expfmtFamily(t, f, mf); !bytes.Equal(renderedBytes(t, next), want) {
					t.Fatalf("%s version %d (plain %v): bytes differ from expfmt's", f, version, asked)
				}
				fresh, err := renderFamily(k, exposedOf(mf), nil, asked)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(next.starts, fresh.starts) {
					t.Fatalf("%s version %d: segments start at %v, a fresh encoding's at %v", f, version, next.starts, fresh.starts)
				}
				shared := segmentSet(prev)
				reused := 0
				for x, s := range next.segs {
					if !shared[s] {
						continue
					}
					reused++
					for i := next.starts[x]; i < next.starts[x]+len(s.ends); i++ {
						if changed[ms[i]] {
							t.Fatalf("%s version %d: segment %d holds a changed metric but was shared", f, version, x)
						}
					}
				}
				if prev.plain != next.plain {
					if reused > 0 {
						t.Fatalf("%s version %d: rendered plain %v after plain %v, %d segments shared", f, version, next.plain, prev.plain, reused)
					}
					prev = next
					continue
				}
				// An operation changes the segment it falls in, and may join
				// it with the next one or split it.
				if reused < len(next.segs)-2*ops {
					t.Fatalf("%s version %d: %d of %d segments shared after %d operations", f, version, reused, len(next.segs), ops)
				}
				prev = next
			}
		}
	}
}
