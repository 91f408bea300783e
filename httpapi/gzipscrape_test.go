package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// scrape serves GET /metrics with the given Accept and Accept-Encoding
// headers and returns the body, decompressed when it came compressed, and
// the number of gzip members it held (a client such as curl reads only the
// first).
func (s *benchStore) scrape(t *testing.T, accept, encoding string) ([]byte, int) {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", encoding)
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Content-Encoding") != "gzip" {
		return rec.Body.Bytes(), 0
	}
	// A bytes.Reader is a flate.Reader: the gzip reader takes no byte
	// past a member's end, so each member can be read on its own.
	br := bytes.NewReader(rec.Body.Bytes())
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	members := 0
	var out bytes.Buffer
	for {
		zr.Multistream(false)
		if _, err := io.Copy(&out, zr); err != nil {
			t.Fatal(err)
		}
		members++
		if err := zr.Reset(br); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes(), members
}

// TestGzipScrapesMatchIdentityScrapes scrapes a store of 3,000 groups in
// text and protobuf, compressed and not, while groups are changed, added
// and deleted: each compressed body is one gzip member holding the
// identity body byte for byte.
func TestGzipScrapesMatchIdentityScrapes(t *testing.T) {
	s := newBenchStore(t, 3000)
	formats := map[string]string{
		"text":     "text/plain; version=0.0.4",
		"protobuf": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
	}
	check := func(when string) {
		t.Helper()
		for name, accept := range formats {
			plain, _ := s.scrape(t, accept, "identity")
			unzipped, members := s.scrape(t, accept, "gzip")
			if !bytes.Equal(plain, unzipped) {
				t.Fatalf("%s, %s: the gzip scrape differs from the identity scrape (%d and %d bytes)", when, name, len(unzipped), len(plain))
			}
			if members != 1 {
				t.Fatalf("%s, %s: %d gzip members, want one", when, name, members)
			}
		}
	}
	check("filled")
	s.push(t, 17, 99999)
	check("after a change")
	s.push(t, 3000, 5)
	check("after a new group")
	s.index++
	if res := s.state.ApplyCommand(s.index, &fsm.Command{Op: fsm.OpDelete, Labels: map[string]string{"job": "bench", "instance": "42"}, TimeUnixNano: 1e12}); res.Err != nil {
		t.Fatal(res.Err)
	}
	check("after a delete")
}
