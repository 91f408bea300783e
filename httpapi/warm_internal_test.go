package httpapi

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWarmerRunsWhileKickedAndStopsWhenIdle checks that kicks start the
// warmer, that a burst of kicks makes few refreshes, that it stops after
// its idle time and that a later kick starts it again.
func TestWarmerRunsWhileKickedAndStopsWhenIdle(t *testing.T) {
	var refreshes, lastKick, afterLastKick atomic.Int64
	w := newWarmer(20*time.Millisecond, 60*time.Millisecond, 100*time.Millisecond, 1_000_000, func() bool {
		refreshes.Add(1)
		if k := lastKick.Load(); k != 0 && time.Now().UnixNano() > k {
			afterLastKick.Add(1)
		}
		return true
	})
	for i := 0; i < 1000; i++ {
		w.kick()
	}
	waitUntil(t, "a refresh", func() bool { return refreshes.Load() >= 1 })
	waitUntil(t, "the warmer to stop", func() bool { return !w.running.Load() })
	if n := refreshes.Load(); n > 2 {
		t.Fatalf("a burst of kicks made %d refreshes", n)
	}
	before := refreshes.Load()
	w.kick()
	waitUntil(t, "a refresh after restart", func() bool { return refreshes.Load() > before })
	// Kicks while it runs are not lost: the last one is followed by a
	// refresh that starts after it.
	stop := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(stop) {
		w.kick()
		time.Sleep(time.Millisecond)
	}
	w.kick()
	lastKick.Store(time.Now().UnixNano())
	waitUntil(t, "a refresh after the last kick", func() bool { return afterLastKick.Load() > 0 })
	waitUntil(t, "the warmer to stop again", func() bool { return !w.running.Load() })
}

// TestWarmerKeepsToTheBackground: while changes keep coming, a refresh
// starts no sooner than spacing times the last one's duration after it
// ended; once they stop, the store is caught up well before that.
func TestWarmerKeepsToTheBackground(t *testing.T) {
	// The store counts as quiet after quiet without a change: far longer
	// than the millisecond between the changes below, so that a loaded
	// machine's scheduling delays do not pass for the end of the changes.
	const took, quiet = 50 * time.Millisecond, 50 * time.Millisecond
	var (
		mu        sync.Mutex
		starts    []time.Time
		ends      []time.Time
		loadEnded = make(chan struct{})
	)
	w := newWarmer(quiet, 20*time.Millisecond, time.Second, 1, func() bool {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		time.Sleep(took)
		mu.Lock()
		defer mu.Unlock()
		ends = append(ends, time.Now())
		if len(ends) == 3 {
			close(loadEnded)
		}
		return true
	})
	// Changes every millisecond until the third refresh ends, then none.
	kicking := true
	for kicking {
		select {
		case <-loadEnded:
			kicking = false
		default:
			w.kick()
			time.Sleep(time.Millisecond)
		}
	}
	waitUntil(t, "the refresh after the changes stopped", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(starts) >= 4
	})
	mu.Lock()
	defer mu.Unlock()
	spaced := time.Duration(w.spacing) * took
	for i := 1; i < 3; i++ {
		if gap := starts[i].Sub(ends[i-1]); gap < spaced {
			t.Errorf("under changes, refresh %d started %v after the one before ended, want at least %v", i+1, gap, spaced)
		}
	}
	if gap := starts[3].Sub(ends[2]); gap >= spaced {
		t.Errorf("the refresh after the changes stopped came %v after the last one, want less than %v", gap, spaced)
	}
}

// TestWarmerRetriesADeclinedRefresh checks that a refresh that declines
// (the node is catching up) is tried again without another kick until it
// is done, and that the warmer then stops as usual.
func TestWarmerRetriesADeclinedRefresh(t *testing.T) {
	var tries, done atomic.Int64
	var ready atomic.Bool
	w := newWarmer(10*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond, 1_000_000, func() bool {
		tries.Add(1)
		if !ready.Load() {
			return false
		}
		done.Add(1)
		return true
	})
	w.kick()
	waitUntil(t, "declined refreshes tried again", func() bool { return tries.Load() >= 3 })
	if done.Load() != 0 {
		t.Fatal("a refresh done while declining")
	}
	ready.Store(true)
	waitUntil(t, "the refresh done once the node is ready", func() bool { return done.Load() == 1 })
	waitUntil(t, "the warmer to stop", func() bool { return !w.running.Load() })
	if n := done.Load(); n != 1 {
		t.Fatalf("%d refreshes for one kick", n)
	}
}

// TestExpositionIsNotWarmedWhileCatchingUp checks that changes applied
// while the node is not ready (a restart replaying its log) are not
// encoded in the background, and are once it is ready.
func TestExpositionIsNotWarmedWhileCatchingUp(t *testing.T) {
	state := fsm.New(nil)
	readiness := &switchReadiness{}
	readiness.catchingUp.Store(true)
	a := New(Options{Store: state, Registry: prometheus.NewRegistry(), Readiness: readiness})
	a.Handler()
	unasked := keyOf(expfmt.NegotiateAccept(http.Header{}, expfmt.DefaultAcceptedFormats()...))
	for i := 1; i <= 20; i++ {
		mf := &dto.MetricFamily{Name: proto.String("m"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(float64(i))}}}}
		cmd := &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "j", "instance": fmt.Sprint(i)}, Families: []*dto.MetricFamily{mf}, TimeUnixNano: int64(i) * 1e9}
		if res := state.ApplyCommand(uint64(i), cmd); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	encoded := func() int {
		fc := a.renderCache.byKey(unasked)
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return len(fc.families)
	}
	// Every try of the warmer asks for readiness; after three declined
	// tries nothing is encoded.
	waitUntil(t, "the warmer to try three times", func() bool { return readiness.asked.Load() >= 3 })
	if n := encoded(); n != 0 {
		t.Fatalf("%d families encoded while catching up", n)
	}
	readiness.catchingUp.Store(false)
	waitUntil(t, "the exposition warmed once ready", func() bool { return encoded() > 0 })
}

// switchReadiness is a Readiness whose answer the test sets; it counts
// the questions.
type switchReadiness struct {
	catchingUp atomic.Bool
	asked      atomic.Int64
}

func (r *switchReadiness) Ready() error {
	r.asked.Add(1)
	if r.catchingUp.Load() {
		return errors.New("catching up with the raft log")
	}
	return nil
}

// TestPushesWarmTheExpositionBeforeAnyScrape checks that changes of the
// store get the default format encoded in the background, without a
// scrape, and then the formats that were scraped.
func TestPushesWarmTheExpositionBeforeAnyScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	state := fsm.New(nil)
	a := New(Options{Store: state, Registry: reg})
	h := a.Handler()
	unasked := keyOf(expfmt.NegotiateAccept(http.Header{}, expfmt.DefaultAcceptedFormats()...))
	protoKey := keyOf(expfmt.NewFormat(expfmt.TypeProtoDelim))
	index := uint64(0)
	push := func(group, v int) {
		index++
		mf := &dto.MetricFamily{Name: proto.String(fmt.Sprint("m", v%3)), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(float64(v))}}}}
		cmd := &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "j", "instance": fmt.Sprint(group)}, Families: []*dto.MetricFamily{mf}, TimeUnixNano: int64(v) * 1e9}
		if res := state.ApplyCommand(index, cmd); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	warm := func(k cacheKey) bool {
		fc := a.renderCache.byKey(k)
		fc.mu.Lock()
		defer fc.mu.Unlock()
		fams := state.Exposed()
		if len(fc.families) != len(fams) {
			return false
		}
		for _, ef := range fams {
			if rf := fc.families[ef.Name()]; rf == nil || rf.from != ef {
				return false
			}
		}
		return true
	}
	for i := 0; i < 100; i++ {
		push(i, i)
	}
	waitUntil(t, "the default format encoded without a scrape", func() bool { return warm(unasked) })
	// A protobuf scrape; then changes warm protobuf too.
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	h.ServeHTTP(httptest.NewRecorder(), req)
	for i := 0; i < 10; i++ {
		push(i, 1000+i)
	}
	waitUntil(t, "the scraped format encoded after changes", func() bool { return warm(protoKey) })
}

// warmTestStore is a store of 20 groups of families m0, m1 and m2, and a
// function that pushes them all again with value v.
func warmTestStore(t *testing.T) (*fsm.FSM, func(v int)) {
	t.Helper()
	state := fsm.New(nil)
	index := uint64(0)
	push := func(v int) {
		for g := 0; g < 20; g++ {
			index++
			cmd := &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "j", "instance": fmt.Sprint(g)}, TimeUnixNano: int64(index) * 1e9}
			for f := 0; f < 3; f++ {
				cmd.Families = append(cmd.Families, &dto.MetricFamily{Name: proto.String(fmt.Sprint("m", f)), Type: dto.MetricType_GAUGE.Enum(),
					Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(float64(v))}}}})
			}
			if res := state.ApplyCommand(index, cmd); res.Err != nil {
				t.Fatal(res.Err)
			}
		}
	}
	push(0)
	return state, push
}

// TestWarmEncodesWhatAScrapeWould: a refresh of the warmer leaves every
// family of the state it read encoded (and compressed, when asked), with
// the bytes a scrape's own encoding of that state has.
func TestWarmEncodesWhatAScrapeWould(t *testing.T) {
	state, push := warmTestStore(t)
	format := keyOf(expfmt.NewFormat(expfmt.TypeTextPlain))
	warmed := newRenderCache().byKey(format)
	if _, err := warmed.prepare(state.Exposed()); err != nil {
		t.Fatal(err)
	}
	push(1)
	seen := warmed.cached()
	pushed := state.Exposed()
	if err := warmed.warm(pushed, seen, true, true); err != nil {
		t.Fatal(err)
	}
	want, err := newRenderCache().byKey(format).prepare(pushed)
	if err != nil {
		t.Fatal(err)
	}
	for i, ef := range pushed {
		rf := warmed.families[ef.Name()]
		if rf == nil || rf.from != ef {
			t.Fatalf("%s is not encoded from the state the refresh read", ef.Name())
		}
		if got, want := string(rf.bytes()), string(slices.Concat(want[i]...)); got != want {
			t.Fatalf("%s: the refresh encoded\n%s\na scrape encodes\n%s", ef.Name(), got, want)
		}
		if rf.gz == nil {
			t.Fatalf("%s is not compressed", ef.Name())
		}
	}
}

// TestAScrapeDoesNotWaitForAWholeRefresh: the warmer holds a format's
// cache for one family at a time, so a scrape that comes while it works
// gets the cache after that family and encodes the rest itself; the
// families that scrape brought up to date, from a newer state than the
// warmer's, stay as the scrape made them.
func TestAScrapeDoesNotWaitForAWholeRefresh(t *testing.T) {
	state, push := warmTestStore(t)
	fc := newRenderCache().byKey(keyOf(expfmt.NewFormat(expfmt.TypeTextPlain)))
	seen := fc.cached()
	warmersState := state.Exposed()
	push(2)
	newer := state.Exposed()
	scrapes := 0
	fc.afterWarmFamily = func() {
		fc.afterWarmFamily = nil
		scraped := make(chan error, 1)
		go func() {
			_, err := fc.prepare(newer)
			scraped <- err
		}()
		select {
		case err := <-scraped:
			if err != nil {
				t.Fatal(err)
			}
			scrapes++
		case <-time.After(30 * time.Second):
			t.Fatal("a scrape during a refresh did not get the cache in 30s: it waits for the whole refresh")
		}
	}
	if err := fc.warm(warmersState, seen, true, false); err != nil {
		t.Fatal(err)
	}
	if scrapes != 1 {
		t.Fatalf("%d scrapes during the refresh, want 1", scrapes)
	}
	for _, ef := range newer {
		if rf := fc.families[ef.Name()]; rf == nil || rf.from != ef {
			t.Fatalf("%s: the refresh replaced what a scrape encoded from a newer state", ef.Name())
		}
	}
}

// TestTheCacheKeepsWhatScrapesAskFor: before any scrape the warmer encodes
// the default format compressed only (what Prometheus asks for, with a
// sixth of the memory); a compressed scrape keeps it so, an uncompressed
// one makes it keep the plain bytes as well, both answer the same
// exposition, and a format's plain bytes, then its whole cache, go once
// no scrape asked for them within warmWindow.
func TestTheCacheKeepsWhatScrapesAskFor(t *testing.T) {
	state := fsm.New(nil)
	a := New(Options{Store: state, Registry: prometheus.NewRegistry()})
	h := a.Handler()
	text := keyOf(expfmt.NegotiateAccept(http.Header{}, expfmt.DefaultAcceptedFormats()...))
	index := uint64(0)
	push := func(v int) {
		for group := range 50 {
			index++
			mf := &dto.MetricFamily{Name: proto.String(fmt.Sprint("m", group%3)), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(float64(v))}}}}
			cmd := &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "j", "instance": fmt.Sprint(group)}, Families: []*dto.MetricFamily{mf}, TimeUnixNano: int64(v) * 1e9}
			if res := state.ApplyCommand(index, cmd); res.Err != nil {
				t.Fatal(res.Err)
			}
		}
	}
	// cachedAs reports whether format k holds every family of the state,
	// rendered with its plain bytes or compressed only as plain says.
	cachedAs := func(k cacheKey, plain bool) bool {
		a.renderCache.mu.Lock()
		fc := a.renderCache.formats[k]
		a.renderCache.mu.Unlock()
		if fc == nil {
			return false
		}
		fc.mu.Lock()
		defer fc.mu.Unlock()
		for _, ef := range state.Exposed() {
			rf := fc.families[ef.Name()]
			if !rf.current(ef, plain) {
				return false
			}
			for _, s := range rf.segs {
				if s.plain() != plain || (!plain && s.gz == nil) {
					return false
				}
			}
		}
		return true
	}
	scrape := func(gzipped bool) string {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if gzipped {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
		}
		if !gzipped {
			return rec.Body.String()
		}
		return gunzipBody(t, rec.Body)
	}
	// What differs between two scrapes is the node's own metrics; the
	// pushed families are compared.
	pushedOnly := func(body string) string {
		var keep []string
		for _, line := range strings.SplitAfter(body, "\n") {
			if strings.Contains(line, " m0") || strings.Contains(line, " m1") || strings.Contains(line, " m2") ||
				strings.HasPrefix(line, "m0") || strings.HasPrefix(line, "m1") || strings.HasPrefix(line, "m2") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "")
	}

	push(1)
	waitUntil(t, "the default format encoded compressed only before any scrape", func() bool { return cachedAs(text, false) })
	compressed := pushedOnly(scrape(true))
	if !cachedAs(text, false) {
		t.Fatal("a compressed scrape made the cache keep plain bytes")
	}
	plain := pushedOnly(scrape(false))
	if !cachedAs(text, true) {
		t.Fatal("an uncompressed scrape left the cache without plain bytes")
	}
	if compressed != plain || !strings.Contains(plain, `m2{instance="47",job="j"} 1`) {
		t.Fatalf("compressed scrape:\n%s\nuncompressed scrape:\n%s", compressed, plain)
	}
	fc := a.renderCache.byKey(text)
	push(2)
	waitUntil(t, "changes warmed with plain bytes", func() bool { return cachedAs(text, true) })

	// No uncompressed scrape within warmWindow: the plain bytes go.
	longAgo := time.Now().Add(-warmWindow - time.Minute).UnixNano()
	fc.lastPlainScrape.Store(longAgo)
	push(3)
	waitUntil(t, "the plain bytes dropped", func() bool { return cachedAs(text, false) })
	if got := pushedOnly(scrape(true)); !strings.Contains(got, `m2{instance="47",job="j"} 3`) {
		t.Fatalf("compressed scrape after the plain bytes went:\n%s", got)
	}

	// Another format scraped now, this one not within warmWindow: its
	// cache goes.
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	h.ServeHTTP(httptest.NewRecorder(), req)
	fc.lastGzipScrape.Store(longAgo)
	push(4)
	waitUntil(t, "the unscraped format dropped", func() bool {
		a.renderCache.mu.Lock()
		defer a.renderCache.mu.Unlock()
		return a.renderCache.formats[text] == nil
	})

	// The other format's turn: no cache is left, and the warmer does not
	// take that for a node never scraped (and render the default format
	// again for nobody).
	protoFC := a.renderCache.byKey(keyOf(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	protoFC.lastPlainScrape.Store(longAgo)
	push(5)
	a.warmExposition(a.renderCache, text)
	a.renderCache.mu.Lock()
	left := len(a.renderCache.formats)
	a.renderCache.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d format caches left after none was scraped within warmWindow", left)
	}
	if got := pushedOnly(scrape(false)); !strings.Contains(got, `m2{instance="47",job="j"} 5`) {
		t.Fatalf("scrape of a dropped format:\n%s", got)
	}
}

// TestCompressedOnlyScrapesOfALargeStore: compressed scrapes of a store
// large enough to be rendered on every core, with label values long
// enough that segments outgrow DEFLATE's 32 KiB window, answer what an
// uncompressed scrape of a fresh cache does, before and after pushes that
// make the cache decompress the segments it changes.
func TestCompressedOnlyScrapesOfALargeStore(t *testing.T) {
	const groups = 8000
	state := fsm.New(nil)
	reg := prometheus.NewRegistry()
	h := New(Options{Store: struct{ Store }{state}, Registry: reg}).Handler()
	pad := strings.Repeat("p", 3000)
	index := uint64(0)
	push := func(group, v int) {
		index++
		small := &dto.MetricFamily{Name: proto.String("m0"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(float64(v))}}}}
		large := &dto.MetricFamily{Name: proto.String("m1"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{
			Label: []*dto.LabelPair{{Name: proto.String("pad"), Value: proto.String(fmt.Sprint(pad, group))}},
			Gauge: &dto.Gauge{Value: proto.Float64(float64(v))}}}}
		cmd := &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "j", "instance": fmt.Sprint(group)}, Families: []*dto.MetricFamily{small, large}, TimeUnixNano: int64(v+1) * 1e9}
		if res := state.ApplyCommand(index, cmd); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	for g := range groups {
		push(g, g)
	}
	get := func(h http.Handler, encoding string) string {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", encoding)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("scrape: %d", rec.Code)
		}
		body := rec.Body.String()
		if encoding == "gzip" {
			body = gunzipBody(t, rec.Body)
		}
		// The pushed families only; the node's own metrics differ
		// between scrapes.
		var keep []string
		for _, line := range strings.SplitAfter(body, "\n") {
			if strings.HasPrefix(line, "m0") || strings.HasPrefix(line, "m1") || strings.HasPrefix(line, "push_") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "")
	}
	for round := range 3 {
		compressed := get(h, "gzip")
		fresh := New(Options{Store: struct{ Store }{state}, Registry: prometheus.NewRegistry()}).Handler()
		if want := get(fresh, ""); compressed != want {
			t.Fatalf("round %d: a compressed scrape (%d bytes of pushed families) differs from an uncompressed one of a fresh cache (%d bytes)", round, len(compressed), len(want))
		}
		if !strings.Contains(compressed, fmt.Sprintf(`m1{instance="7999",job="j",pad="%s7999"}`, pad)) {
			t.Fatalf("round %d: the scrape lacks the last group's metric", round)
		}
		for k := range 200 {
			push((k*37+round)%groups, groups+round*1000+k)
		}
	}
}

// gunzipBody reads a gzip-compressed response body.
func gunzipBody(t *testing.T, r io.Reader) string {
	t.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
