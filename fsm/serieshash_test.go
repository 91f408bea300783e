package fsm

import (
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// TestSeriesHashIsTheHashOfItsBytes pins seriesHash to the xxhash of name
// and label pairs, each followed by the separator byte, written piece by
// piece into a digest: the value every node and every version computes,
// which orders the store errors. Label sets longer than the stack buffer
// are covered too, and a short one is hashed without allocating.
func TestSeriesHashIsTheHashOfItsBytes(t *testing.T) {
	sep := []byte{model.SeparatorByte}
	digest := func(name string, m *dto.Metric) uint64 {
		var h xxhash.Digest
		h.Reset()
		_, _ = h.WriteString(name)
		_, _ = h.Write(sep)
		for _, lp := range m.GetLabel() {
			_, _ = h.WriteString(lp.GetName())
			_, _ = h.Write(sep)
			_, _ = h.WriteString(lp.GetValue())
			_, _ = h.Write(sep)
		}
		return h.Sum64()
	}
	pair := func(n, v string) *dto.LabelPair { return &dto.LabelPair{Name: proto.String(n), Value: proto.String(v)} }
	cases := []struct {
		name string
		m    *dto.Metric
	}{
		{"up", &dto.Metric{}},
		{"", &dto.Metric{Label: []*dto.LabelPair{pair("", "")}}},
		{"requests_total", &dto.Metric{Label: []*dto.LabelPair{pair("instance", "host:9100"), pair("job", "batch")}}},
		{"long", &dto.Metric{Label: []*dto.LabelPair{pair("a", strings.Repeat("x", 600)), pair("b", "y")}}},
		{strings.Repeat("n", 700), &dto.Metric{Label: []*dto.LabelPair{pair("job", "j")}}},
	}
	seen := map[uint64]bool{}
	for _, c := range cases {
		r := recordOf(c.m)
		got, want := seriesHash(c.name, &r), digest(c.name, c.m)
		if got != want {
			t.Errorf("seriesHash(%.20q, %v) = %x, want the digest's %x", c.name, c.m, got, want)
		}
		seen[got] = true
	}
	if len(seen) != len(cases) {
		t.Errorf("%d distinct hashes of %d different series", len(seen), len(cases))
	}
	short := recordOf(cases[2].m)
	if n := testing.AllocsPerRun(100, func() { seriesHash(cases[2].name, &short) }); n != 0 {
		t.Errorf("hashing a short series allocates %v times, want 0", n)
	}
}
