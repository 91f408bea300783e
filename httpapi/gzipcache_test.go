package httpapi

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// gaugeFamily is a family of n gauges in exposition order, metric i with
// value values(i).
func gaugeFamily(n int, value func(int) float64) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: proto.String("g"), Type: dto.MetricType_GAUGE.Enum()}
	for i := range n {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: []*dto.LabelPair{{Name: proto.String("instance"), Value: proto.String(fmt.Sprintf("i%06d", i))}, {Name: proto.String("job"), Value: proto.String("j")}},
			Gauge: &dto.Gauge{Value: proto.Float64(value(i))},
		})
	}
	slices.SortFunc(mf.Metric, func(a, b *dto.Metric) int {
		switch {
		case fsm.LabelsLess(a.Label, b.Label):
			return -1
		case fsm.LabelsLess(b.Label, a.Label):
			return 1
		}
		return 0
	})
	return mf
}

// gunzip joins pieces into a gzip stream and reads it back as one member.
func gunzip(t *testing.T, pieces []deflated) []byte {
	t.Helper()
	var stream bytes.Buffer
	if err := writeGzip(&stream, pieces); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&stream)
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if stream.Len() != 0 {
		t.Fatalf("%d bytes after the first gzip member", stream.Len())
	}
	return b
}

func TestCRC32CombineEqualsTheChecksumOfTheWhole(t *testing.T) {
	a, b := []byte("the first part, "), bytes.Repeat([]byte("and the second one "), 1000)
	for _, c := range []struct{ a, b []byte }{{a, b}, {nil, b}, {a, nil}, {b, a}} {
		got := crc32Combine(crc32.ChecksumIEEE(c.a), crc32.ChecksumIEEE(c.b), uint64(len(c.b)))
		if want := crc32.ChecksumIEEE(append(append([]byte(nil), c.a...), c.b...)); got != want {
			t.Errorf("combined %08x, want %08x (lengths %d, %d)", got, want, len(c.a), len(c.b))
		}
	}
}

// TestGzipPiecesHoldTheFamilyAndOnlyChangedBlocksAreCompressedAgain
// changes one metric of a family of 20,000: the pieces, joined into one
// gzip member, decompress to the family's bytes in every format, and only
// the head, the tail and the segments the change made are compressed again.
func TestGzipPiecesHoldTheFamilyAndOnlyChangedBlocksAreCompressedAgain(t *testing.T) {
	for name, f := range map[string]expfmt.Format{"text": expfmt.NewFormat(expfmt.TypeTextPlain), "protobuf": expfmt.NewFormat(expfmt.TypeProtoDelim)} {
		t.Run(name, func(t *testing.T) {
			k := keyOf(f)
			before := gaugeFamily(20000, func(i int) float64 { return float64(i) })
			rf, err := renderFamily(k, exposedOf(before), nil, true)
			if err != nil {
				t.Fatal(err)
			}
			first, err := rf.gzipped()
			if err != nil {
				t.Fatal(err)
			}
			if got := gunzip(t, first); !bytes.Equal(got, rf.bytes()) {
				t.Fatal("the pieces do not decompress to the family's bytes")
			}
			if len(first) < 20000/segmentMetrics/4 {
				t.Fatalf("%d pieces for 20,000 metrics", len(first))
			}

			after := &dto.MetricFamily{Name: before.Name, Type: before.Type, Metric: slices.Clone(before.Metric)}
			after.Metric[12345] = &dto.Metric{Label: before.Metric[12345].Label, Gauge: &dto.Gauge{Value: proto.Float64(-1)}}
			next, err := renderFamily(k, exposedOf(after), rf, true)
			if err != nil {
				t.Fatal(err)
			}
			second, err := next.gzipped()
			if err != nil {
				t.Fatal(err)
			}
			if got := gunzip(t, second); !bytes.Equal(got, next.bytes()) {
				t.Fatal("the pieces of the new version do not decompress to its bytes")
			}
			old := map[*byte]bool{}
			for _, p := range first {
				old[&p.data[0]] = true
			}
			fresh := 0
			for _, p := range second {
				if !old[&p.data[0]] {
					fresh++
				}
			}
			// The segments the change made: the changed metric's, or two
			// when its new bytes end a segment where its old ones did not
			// (the segment splits; the other way round, it takes in the
			// next one and stays one). Segment ends follow the bytes and
			// the process's seed, blockSeed: a fixed bound on the fresh
			// blocks failed for about one changed metric in 128, per
			// format.
			shared := segmentSet(rf)
			made := 0
			for _, s := range next.segs {
				if !shared[s] {
					made++
				}
			}
			if made < 1 || made > 2 {
				t.Fatalf("%d segments made again after one metric changed", made)
			}
			// Compressed again: those segments, and the head (in delimited
			// protobuf it holds the message length) and the tail, which
			// every version compresses anew.
			want := 1 + made
			if len(next.tail) > 0 {
				want++
			}
			if fresh != want {
				t.Fatalf("%d of %d blocks compressed again after one metric changed (%d segments made again), want %d", fresh, len(second), made, want)
			}
		})
	}
}
