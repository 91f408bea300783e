package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// FuzzParseGroupingLabels checks the URL grouping-key parser never panics,
// and that whatever it accepts has only valid, non-reserved label names.
func FuzzParseGroupingLabels(f *testing.F) {
	for _, seed := range []string{"", "/", "/a/b", "/a", "/instance@base64/=", "/v@base64/Zm9vYg==", "/v@base64/!!!",
		"/__x/y", "/in-valid/x", "/U__my_2e_label/v", "/a/b/c/d/e/f", "/a//b/c"} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, path string, utf8 bool) {
		validation, escaping := model.LegacyValidation, model.NoEscaping
		if utf8 {
			validation, escaping = model.UTF8Validation, model.ValueEncodingEscaping
		}
		labels, err := parseGroupingLabels(path, validation, escaping)
		if err != nil {
			return
		}
		for name := range labels {
			if !validation.IsValidLabelName(name) || strings.HasPrefix(name, model.ReservedLabelPrefix) {
				t.Fatalf("accepted label name %q from %q", name, path)
			}
		}
	})
}

// FuzzParseBody pushes arbitrary bodies, as text or delimited protobuf,
// plain, gzip or snappy encoded, through the request decoding and the body
// parser: no panic, and an error or families with names.
func FuzzParseBody(f *testing.F) {
	var pb bytes.Buffer
	_, _ = protodelim.MarshalTo(&pb, &dto.MetricFamily{Name: proto.String("x"), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}}}})
	for _, body := range [][]byte{[]byte("a 1\n"), []byte("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
		[]byte("a{ 1\n"), []byte("a 1 123\n"), pb.Bytes(), {0xff, 0xff, 0xff, 0xff, 0x0f}, nil} {
		for enc := uint8(0); enc < 3; enc++ {
			f.Add(body, true, enc)
			f.Add(body, false, enc)
		}
	}
	a := &API{validation: model.LegacyValidation}
	f.Fuzz(func(t *testing.T, body []byte, protobuf bool, enc uint8) {
		wire, encoding := testutil.EncodeBody(body, enc)
		req := httptest.NewRequest("PUT", "/metrics/job/j", bytes.NewReader(wire))
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		if protobuf {
			req.Header.Set("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
		}
		decodeRequest(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fams, err := a.parseBody(r, DefaultMaxSeriesPerPush)
			if err != nil {
				return
			}
			for i := 1; i < len(fams); i++ {
				if fams[i-1].GetName() >= fams[i].GetName() {
					t.Fatalf("families not sorted and unique: %q, %q", fams[i-1].GetName(), fams[i].GetName())
				}
			}
		})).ServeHTTP(httptest.NewRecorder(), req)
	})
}
