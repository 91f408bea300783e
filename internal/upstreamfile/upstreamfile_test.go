package upstreamfile

import (
	"bytes"
	"encoding/gob"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func gauge(name string, v float64, labels ...string) *gobbableMetricFamily {
	m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(v)}}
	for i := 0; i+1 < len(labels); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(labels[i]), Value: proto.String(labels[i+1])})
	}
	return (*gobbableMetricFamily)(&dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{m}})
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeBothKeyKinds(t *testing.T) {
	pushed := time.Unix(1_700_000_000, 123_456_789)
	groups := []metricGroup{
		{Labels: map[string]string{"job": "b", "instance": "i"}, Metrics: map[string]timestampedMetricFamily{
			"x":                 {Timestamp: pushed, GobbableMetricFamily: gauge("x", 1, "instance", "i", "job", "b")},
			"push_time_seconds": {Timestamp: pushed, GobbableMetricFamily: gauge("push_time_seconds", 1.7e9, "instance", "i", "job", "b")},
		}},
		{Labels: map[string]string{"job": "a"}, Metrics: map[string]timestampedMetricFamily{
			"y": {GobbableMetricFamily: gauge("y", 2, "instance", "", "job", "a")},
		}},
	}
	for name, file := range map[string][]byte{
		"string keys (1.0+)": encode(t, map[string]metricGroup{"k1": groups[0], "k2": groups[1]}),
		"hash keys (0.x)":    encode(t, map[uint64]metricGroup{1: groups[0], 2: groups[1]}),
	} {
		got, err := Decode(file)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Sorted by grouping key: "instance" sorts before "job".
		if len(got) != 2 || got[0].Labels.Get("job") != "b" || got[1].Labels.Get("job") != "a" || got[0].Key >= got[1].Key {
			t.Fatalf("%s: groups %v", name, got)
		}
		if f := got[0].Families.Get("x"); f.TimeUnixNano != pushed.UnixNano() || f.Metrics()[0].GaugeValue() != 1 {
			t.Fatalf("%s: family x %+v", name, f)
		}
		if f := got[1].Families.Get("y"); f.TimeUnixNano != 0 {
			t.Fatalf("%s: zero time became %d", name, f.TimeUnixNano)
		}
	}
}

func TestDecodeRefusesBadFiles(t *testing.T) {
	withTS := gauge("x", 1)
	withTS.Metric[0].TimestampMs = proto.Int64(5)
	for name, tc := range map[string]struct {
		file []byte
		want string
	}{
		"garbage":     {[]byte("no gob here"), "not a Pushgateway persistence file"},
		"other gob":   {encode(t, []string{"a"}), "not a Pushgateway persistence file"},
		"no job":      {encode(t, map[string]metricGroup{"k": {Labels: map[string]string{"instance": "i"}, Metrics: map[string]timestampedMetricFamily{"x": {GobbableMetricFamily: gauge("x", 1)}}}}), "no job label"},
		"bad label":   {encode(t, map[string]metricGroup{"k": {Labels: map[string]string{"job": "j", "__x": "i"}, Metrics: map[string]timestampedMetricFamily{"x": {GobbableMetricFamily: gauge("x", 1)}}}}), "invalid grouping label name"},
		"timestamp":   {encode(t, map[string]metricGroup{"k": {Labels: map[string]string{"job": "j"}, Metrics: map[string]timestampedMetricFamily{"x": {GobbableMetricFamily: withTS}}}}), "timestamp"},
		"wrong name":  {encode(t, map[string]metricGroup{"k": {Labels: map[string]string{"job": "j"}, Metrics: map[string]timestampedMetricFamily{"z": {GobbableMetricFamily: gauge("x", 1)}}}}), "is named"},
		"nil family":  {encode(t, map[string]metricGroup{"k": {Labels: map[string]string{"job": "j"}, Metrics: map[string]timestampedMetricFamily{"z": {Timestamp: time.Unix(1, 0)}}}}), "is empty"},
		"no families": {encode(t, map[string]metricGroup{"k": {Labels: map[string]string{"job": "j"}}}), "no metric families"},
	} {
		if _, err := Decode(tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	path := filepath.Join(dir, "f")
	b := encode(t, map[string]metricGroup{"k": {Labels: map[string]string{"job": "j"}, Metrics: map[string]timestampedMetricFamily{"x": {GobbableMetricFamily: gauge("x", 1)}}}})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil || len(f.Groups) != 1 || len(f.Digest) != 64 || !strings.Contains(f.Source(), path) {
		t.Fatalf("%+v %v", f, err)
	}
}
