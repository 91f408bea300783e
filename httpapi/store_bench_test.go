package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

// The benchmarks in this file read an FSM filled directly (no raft, no
// HTTP pushes), so they measure the read side alone.

// benchPushCmd is the benchmark push (10 gauge families) to group i.
func benchPushCmd(tb testing.TB, i, v int) *fsm.Command {
	tb.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(benchBody(v)))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "bench", "instance": fmt.Sprint(i)}, TimeUnixNano: int64(v+1) * 1e9}
	for _, mf := range mfs {
		cmd.Families = append(cmd.Families, mf)
	}
	return cmd
}

// benchStore is an FSM with groups groups of the benchmark push and the
// API's handler over it.
type benchStore struct {
	state   *fsm.FSM
	handler http.Handler
	index   uint64
}

func newBenchStore(tb testing.TB, groups int) *benchStore {
	return newBenchStoreWith(tb, groups, false)
}

// newBenchStoreWith fills the store before the handler exists (nothing is
// encoded before the first request) or, live, after (the handler keeps its
// cache warm while the store changes, as in the gateway).
func newBenchStoreWith(tb testing.TB, groups int, live bool) *benchStore {
	tb.Helper()
	reg := prometheus.NewRegistry()
	reserved, err := httpapi.ReservedFamilies(reg)
	if err != nil {
		tb.Fatal(err)
	}
	s := &benchStore{state: fsm.New(reserved)}
	if live {
		s.handler = httpapi.New(httpapi.Options{Store: s.state, Registry: reg}).Handler()
	}
	for i := 0; i < groups; i++ {
		s.push(tb, i, i)
	}
	if !live {
		s.handler = httpapi.New(httpapi.Options{Store: s.state, Registry: reg}).Handler()
	}
	return s
}

func (s *benchStore) push(tb testing.TB, group, v int) {
	tb.Helper()
	s.index++
	if res := s.state.ApplyCommand(s.index, benchPushCmd(tb, group, v)); res.Err != nil {
		tb.Fatal(res.Err)
	}
}

// get serves one GET and returns the body size.
func (s *benchStore) get(tb testing.TB, path, accept string) int {
	tb.Helper()
	return s.getEncoded(tb, path, accept, "")
}

// getEncoded is get with an Accept-Encoding header ("": none).
func (s *benchStore) getEncoded(tb testing.TB, path, accept, encoding string) int {
	tb.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	w := &discardWriter{h: http.Header{}}
	s.handler.ServeHTTP(w, req)
	if w.code != 0 && w.code != http.StatusOK {
		tb.Fatalf("GET %s: %d", path, w.code)
	}
	return w.n
}

// discardWriter is a ResponseWriter that only counts the body.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkAPIMetrics measures GET /api/v1/metrics with 1,000 and 10,000
// groups, one group changed before every request (as under load).
func BenchmarkAPIMetrics(b *testing.B) { benchGetAfterPush(b, "/api/v1/metrics", "") }

// benchGetAfterPush measures GET path with 1,000 and 10,000 groups, one
// group changed before every request (not timed), with the given
// Accept-Encoding ("": none).
func benchGetAfterPush(b *testing.B, path, encoding string) {
	for _, groups := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			s := newBenchStore(b, groups)
			s.getEncoded(b, path, "", encoding)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s.push(b, i%groups, groups+i)
				b.StartTimer()
				b.SetBytes(int64(s.getEncoded(b, path, "", encoding)))
			}
		})
	}
}

// BenchmarkFirstScrape measures the first GET /metrics (text and
// delimited protobuf) after filling an empty store with 10,000 groups of
// 10 families: the fill is not timed, the first scrape is. cold: the
// handler is created after the fill, so the scrape orders and encodes
// everything. live: the handler exists during the fill (as in the
// gateway) and the scrape comes a second after it.
func BenchmarkFirstScrape(b *testing.B) {
	for _, f := range []struct{ name, accept string }{
		{"text", "text/plain; version=0.0.4"},
		{"proto", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"},
	} {
		for _, live := range []bool{false, true} {
			name := f.name + "/cold"
			if live {
				name = f.name + "/live"
			}
			b.Run(name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					s := newBenchStoreWith(b, 10000, live)
					if live {
						time.Sleep(time.Second)
					}
					b.StartTimer()
					b.SetBytes(int64(s.get(b, "/metrics", f.accept)))
				}
			})
		}
	}
}

// BenchmarkScrapeAfterPush measures GET /metrics (text) with 1,000 and
// 10,000 groups after one group changed, without HTTP or raft, as curl asks
// (identity) and as Prometheus asks (gzip; SetBytes counts compressed
// bytes).
func BenchmarkScrapeAfterPush(b *testing.B) {
	b.Run("enc=identity", func(b *testing.B) { benchGetAfterPush(b, "/metrics", "") })
	b.Run("enc=gzip", func(b *testing.B) { benchGetAfterPush(b, "/metrics", "gzip") })
}

// BenchmarkScrapeAfterSpreadPushes measures GET /metrics (text, identity)
// of a store of 100,000 groups after 3,000 of them, spread over the whole
// order, were pushed again with new values (not timed): the work of one
// refresh of the exposition warmer under steady pushes from many clients,
// which changes nearly every segment of every family. The handler sees
// the store without its change notifications, so no warmer does the work
// in the background.
func BenchmarkScrapeAfterSpreadPushes(b *testing.B) {
	const groups, pushes = 100000, 3000
	reg := prometheus.NewRegistry()
	reserved, err := httpapi.ReservedFamilies(reg)
	if err != nil {
		b.Fatal(err)
	}
	s := &benchStore{state: fsm.New(reserved)}
	for i := 0; i < groups; i++ {
		s.push(b, i, i)
	}
	s.handler = httpapi.New(httpapi.Options{Store: struct{ httpapi.Store }{s.state}, Registry: reg}).Handler()
	s.get(b, "/metrics", "")
	v := groups
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for k := 0; k < pushes; k++ {
			v++
			s.push(b, (v*7919)%groups, v)
		}
		b.StartTimer()
		b.SetBytes(int64(s.get(b, "/metrics", "")))
	}
}

// BenchmarkCachedExpositionHeap reports the live heap per group that the
// cached text exposition of 10,000 groups holds after scrapes as
// Prometheus makes them (gzip: compressed pieces only), as curl makes them
// (identity: plain bytes) and both (plain bytes and compressed pieces).
// The state machine's exposition order is made before the measurement, and
// the pooled compressors are not counted.
func BenchmarkCachedExpositionHeap(b *testing.B) {
	const groups = 10000
	for _, c := range []struct {
		name      string
		encodings []string
	}{{"as=prometheus", []string{"gzip"}}, {"as=curl", []string{""}}, {"as=both", []string{"", "gzip"}}} {
		b.Run(c.name, func(b *testing.B) {
			var heap uint64
			for n := 0; n < b.N; n++ {
				b.StopTimer()
				s := newBenchStore(b, groups)
				s.state.Exposed()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.StartTimer()
				for _, enc := range c.encodings {
					s.getEncoded(b, "/metrics", "", enc)
				}
				b.StopTimer()
				// Twice: the first collection leaves the pooled
				// compressors in the pool's victim cache.
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(s)
				heap = after.HeapAlloc - before.HeapAlloc
				b.StartTimer()
			}
			b.ReportMetric(float64(heap)/groups, "heap-bytes/group")
		})
	}
}
