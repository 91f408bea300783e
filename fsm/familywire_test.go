package fsm

import (
	"bytes"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// TestFamilyMessageIsProtoMarshal checks that a family written from its
// fields (for snapshots) has the bytes of proto's deterministic marshalling
// of the message MF builds, and its size, for every type and with each
// header field present or absent.
func TestFamilyMessageIsProtoMarshal(t *testing.T) {
	opts := proto.MarshalOptions{Deterministic: true}
	texts := []string{
		"# TYPE g gauge\n# HELP g Help.\ng{a=\"1\"} 1.5\ng{a=\"2\"} -3\n",
		"# TYPE c counter\nc_total 7\n",
		"u{x=\"\"} 0\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
		"# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n",
	}
	var fams []*dto.MetricFamily
	for _, text := range texts {
		fams = append(fams, parseText(t, text)...)
	}
	unit, empty := "seconds", ""
	fams = append(fams,
		&dto.MetricFamily{Name: proto.String("with_unit"), Unit: &unit, Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}}}},
		&dto.MetricFamily{Name: proto.String("empty_help"), Help: &empty},
		&dto.MetricFamily{},
	)
	for _, mf := range fams {
		f := NewFamily(mf, 1)
		want, err := opts.Marshal(f.MF())
		if err != nil {
			t.Fatal(err)
		}
		size, sizes := familyMessageSize(f, nil)
		got, err := appendFamilyMessage([]byte("prefix"), f, sizes)
		if err != nil {
			t.Fatal(err)
		}
		if size != len(want) || !bytes.Equal(got[len("prefix"):], want) {
			t.Errorf("%q: %d bytes (size %d), want the %d of proto.Marshal", mf.GetName(), len(got)-len("prefix"), size, len(want))
		}
		if !proto.Equal(f.MF(), mf) {
			t.Errorf("%q: MF differs from the message the family was made of", mf.GetName())
		}
	}
}
