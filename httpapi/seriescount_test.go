package httpapi

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

// FuzzTextSeriesCount checks that the streaming series counter agrees with
// the text parser on every body the parser accepts: it never counts more
// series than the parser makes (a valid push under the limit is never
// refused) nor fewer (the limit holds).
func FuzzTextSeriesCount(f *testing.F) {
	for _, seed := range []string{
		"a 1\n", "a 1\na 2\n", "a{x=\"1\"} 1\na{x=\"2\"} 1\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"# TYPE h histogram\nh_bucket{x=\"a\",le=\"1\"} 1\nh_bucket{le=\"1\",x=\"b\"} 1\nh_count{x=\"a\"} 1\n",
		"# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\ns{quantile=\"0.5\",y=\"z\"} 1\n",
		"# TYPE s summary\ns_bucket 1\n", "# HELP a help\n# TYPE a counter\na 1\n",
		"{\"a.b\", c=\"d\"} 1\n{\"a.b\", c=\"e\"} 1\n", "# TYPE \"h.x\" histogram\n{\"h.x_bucket\", le=\"1\"} 1\n",
		"a{x=\"q\\\"uote\",y=\"back\\\\slash\"} 1\n", "  a 1\n\n\t# comment\n",
		"# TYPE h HISTOGRAM\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"# TYPE h histogram\nh_bucket {a=\"1\",le=\"1\"} 1\nh_sum {a=\"1\"} 1\nh_count\t{a=\"1\"} 1\n",
		"# TYPE g gaugehistogram\ng_bucket{le=\"1\"} 1\ng_bucket{le=\"+Inf\"} 1\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			return
		}
		want := 0
		for _, mf := range fams {
			want += len(mf.GetMetric())
		}
		c := newTextSeriesCounter(bytes.NewReader(body), math.MaxInt)
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatal(err)
		}
		if c.count > want && labelBeforeQuotedName(body) {
			// expfmt keeps labels of an earlier line when a braces-form
			// line names its metric after a label: the counter counts
			// more, never fewer.
			return
		}
		if c.count != want {
			t.Fatalf("counted %d series, the parser made %d, of %q", c.count, want, body)
		}
		// The label limits, checked line by line while reading, agree
		// with the check of the parsed families.
		limits := pushLimits{series: math.MaxInt, labels: 3, valueBytes: 4}
		grouping := map[string]string{"job": "j"}
		lc := newTextSeriesCounter(bytes.NewReader(body), math.MaxInt)
		lc.labels = &labelLimits{limits: limits, grouping: grouping}
		_, _ = io.Copy(io.Discard, lc)
		var after error
		for _, mf := range fams {
			if after = limits.checkLabels(grouping, mf); after != nil {
				break
			}
		}
		if (lc.err != nil) != (after != nil) {
			if lc.err != nil && labelBeforeQuotedName(body) {
				return // the parser's quirk above: labels of an earlier line
			}
			t.Fatalf("label limits while reading: %v; after parsing: %v; of %q", lc.err, after, body)
		}
	})
}

// TestLabelLimitsStopReadingEarly: a series with too many labels or too
// long a value is refused at its line (text) or its family (protobuf),
// not after the whole body was parsed.
func TestLabelLimitsStopReadingEarly(t *testing.T) {
	var rest bytes.Buffer
	for i := range 500_000 {
		fmt.Fprintf(&rest, "m{i=\"%d\"} 1\n", i)
	}
	manyLabels := "wide{"
	for i := range 200 {
		manyLabels += fmt.Sprintf("l%d=\"v\",", i)
	}
	manyLabels += "} 1\n"
	longValue := "long{v=\"" + strings.Repeat("x", 70<<10) + "\"} 1\n"
	for name, tc := range map[string]struct {
		first, want string
	}{
		"labels": {manyLabels, "--push.max-labels-per-series=128"},
		"value":  {longValue, "--push.max-label-value-bytes=65536"},
	} {
		a := &API{validation: model.LegacyValidation}
		body := append([]byte(tc.first), rest.Bytes()...)
		cr := &countingReader{r: bytes.NewReader(body)}
		req := httptest.NewRequest("PUT", "/metrics/job/j", nil)
		req.Body = io.NopCloser(cr)
		_, err := a.parseBodyLimited(req, a.limits(), map[string]string{"job": "j"})
		var le *limitError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: got %v, want a limit error naming %s", name, err, tc.want)
		}
		if cr.n > int64(len(tc.first))+64<<10 {
			t.Errorf("%s: read %d of %d bytes before refusing", name, cr.n, len(body))
		}
	}

	// Protobuf: the family with the oversized series is refused before the
	// next one is read.
	wide := &dto.MetricFamily{Name: proto.String("wide"), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}}}}
	for i := range 200 {
		wide.Metric[0].Label = append(wide.Metric[0].Label, &dto.LabelPair{Name: proto.String(fmt.Sprintf("l%d", i)), Value: proto.String("v")})
	}
	var pb bytes.Buffer
	if _, err := protodelim.MarshalTo(&pb, wide); err != nil {
		t.Fatal(err)
	}
	first := pb.Len()
	for i := range 20_000 {
		if _, err := protodelim.MarshalTo(&pb, &dto.MetricFamily{Name: proto.String(fmt.Sprintf("g%d", i)), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	a := &API{validation: model.LegacyValidation}
	cr := &countingReader{r: bytes.NewReader(pb.Bytes())}
	req := httptest.NewRequest("PUT", "/metrics/job/j", nil)
	req.Header.Set("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
	req.Body = io.NopCloser(cr)
	_, err := a.parseBodyLimited(req, a.limits(), map[string]string{"job": "j"})
	var le *limitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "--push.max-labels-per-series") {
		t.Fatalf("protobuf: got %v", err)
	}
	if cr.n > int64(first)+4096 {
		t.Errorf("protobuf: read %d of %d bytes before refusing", cr.n, pb.Len())
	}
}

// labelBeforeQuotedName reports whether a line of the braces form
// ({"name", ...}) starts with a label instead of the name.
func labelBeforeQuotedName(body []byte) bool {
	for _, l := range bytes.Split(body, []byte("\n")) {
		l = bytes.TrimLeft(l, " \t")
		if len(l) == 0 || l[0] != '{' {
			continue
		}
		_, rest, ok := cutName(bytes.TrimLeft(l[1:], " \t"))
		if ok && bytes.HasPrefix(bytes.TrimLeft(rest, " \t"), []byte("=")) {
			return true
		}
	}
	return false
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestSeriesLimitStopsReadingEarly: a body of a million series is refused
// after reading about as many bytes as the limit allows, in text and in
// protobuf, gzip encoded as an attacker would send it.
func TestSeriesLimitStopsReadingEarly(t *testing.T) {
	const series, limit = 1_000_000, 1000
	var text bytes.Buffer
	text.WriteString("# TYPE h histogram\n")
	for i := range series {
		fmt.Fprintf(&text, "h_bucket{i=\"%d\",le=\"+Inf\"} 1\n", i)
	}
	mf := &dto.MetricFamily{Name: proto.String("g"), Type: dto.MetricType_GAUGE.Enum()}
	for range series {
		mf.Metric = append(mf.Metric, &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(1)}})
	}
	var pb bytes.Buffer
	if _, err := protodelim.MarshalTo(&pb, mf); err != nil {
		t.Fatal(err)
	}
	// A family sent twice counts once (the last one is kept).
	twice := &dto.MetricFamily{Name: proto.String("g"), Type: dto.MetricType_GAUGE.Enum(), Metric: mf.Metric[:600]}
	var dup bytes.Buffer
	for range 2 {
		if _, err := protodelim.MarshalTo(&dup, twice); err != nil {
			t.Fatal(err)
		}
	}
	a := &API{validation: model.LegacyValidation}
	req := httptest.NewRequest("PUT", "/metrics/job/j", &dup)
	req.Header.Set("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
	if fams, err := a.parseBody(req, limit); err != nil || len(fams) != 1 {
		t.Fatalf("a family of 600 series sent twice under a limit of %d: %v", limit, err)
	}

	for name, tc := range map[string]struct {
		body        []byte
		contentType string
		readAtMost  int64
	}{
		"text":     {text.Bytes(), "text/plain", 2 * limit * int64(len("h_bucket{i=\"1000000\",le=\"+Inf\"} 1\n"))},
		"protobuf": {pb.Bytes(), "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", int64(pb.Len())},
	} {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(tc.body)
		_ = zw.Close()
		a := &API{validation: model.LegacyValidation, opts: Options{MaxSeriesPerPush: limit}}
		req := httptest.NewRequest("PUT", "/metrics/job/j", nil)
		req.Header.Set("Content-Type", tc.contentType)
		zr, err := gzip.NewReader(&gz)
		if err != nil {
			t.Fatal(err)
		}
		cr := &countingReader{r: zr}
		req.Body = io.NopCloser(cr)
		if _, err := a.parseBody(req, limit); err != errTooManySeries {
			t.Fatalf("%s: got %v, want the series limit", name, err)
		}
		// Text stops within a read buffer of the limit; protobuf reads the
		// one message but refuses it before decoding a single metric.
		if cr.n > tc.readAtMost {
			t.Errorf("%s: read %d of %d bytes before refusing (at most %d expected)", name, cr.n, len(tc.body), tc.readAtMost)
		}
		if !strings.Contains(a.limits().seriesMessage(), "--push.max-series-per-push=1000") {
			t.Errorf("limit message %q", a.limits().seriesMessage())
		}
	}
}
