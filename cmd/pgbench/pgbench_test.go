package main

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
)

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var out []time.Duration
		for _, v := range vs {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("empty: %v", got)
	}
	one := ms(7)
	for _, p := range []float64{0.01, 0.5, 0.99, 1} {
		if got := percentile(one, p); got != 7*time.Millisecond {
			t.Errorf("one sample p%v: %v", p, got)
		}
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for p, want := range map[float64]int{0.5: 50, 0.99: 99, 1: 100, 0.01: 1, 0.995: 100} {
		if got := percentile(hundred, p); got != time.Duration(want)*time.Millisecond {
			t.Errorf("1..100 p%v = %v, want %dms", p, got, want)
		}
	}
	s := summarize(ms(5, 1, 4, 2, 3))
	if s.n != 5 || s.p50 != 3*time.Millisecond || s.p99 != 5*time.Millisecond || s.max != 5*time.Millisecond {
		t.Errorf("summarize: %+v", s)
	}
}

func TestSoakTrend(t *testing.T) {
	at := func(min float64) time.Duration { return time.Duration(min * float64(time.Minute)) }
	// RSS up and down around 1 GiB: flat, whatever the end is.
	wobble := []rssSample{{at(1.5), 1 << 30}, {at(1.75), 1.2 * (1 << 30)}, {at(2), 0.9 * (1 << 30)}, {at(2.25), 1.1 * (1 << 30)}, {at(2.5), 1 << 30}, {at(2.75), 1.05 * (1 << 30)}}
	low, high, slope := trend(wobble)
	if low != 0.9*(1<<30) || high != 1.2*(1<<30) || math.Abs(slope) > 0.1*(1<<30) {
		t.Errorf("wobble: low %v high %v slope %v", low, high, slope)
	}
	// 10 MiB a minute, exactly.
	var rising []rssSample
	for i := range 7 {
		rising = append(rising, rssSample{at(1.5 + 0.25*float64(i)), float64(1<<30 + i*(10<<20)/4)})
	}
	if _, _, slope := trend(rising); math.Abs(slope-10<<20) > 1 {
		t.Errorf("rising: slope %v, want %v", slope, 10<<20)
	}
	if low, high, slope := trend(rising[:2]); low != rising[0].rss || high != rising[1].rss || !math.IsNaN(slope) {
		t.Errorf("two samples: %v %v %v, want no trend", low, high, slope)
	}
}

func TestMedianAndAggregate(t *testing.T) {
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing should be NaN")
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
	agg := aggregate([]figures{
		{"push.put.c1.rate": 10, "push.put.c1.errors": 1, "fill.capped": 0},
		{"push.put.c1.rate": 30, "push.put.c1.errors": 2, "fill.capped": 1},
		{"push.put.c1.rate": 20, "push.put.c1.errors": 0, "fill.capped": 0},
	})
	if agg["push.put.c1.rate"] != 20 || agg["push.put.c1.errors"] != 3 || agg["fill.capped"] != 1 {
		t.Errorf("aggregate: %v", agg)
	}
	if !math.IsNaN(agg.get("conv.p50")) {
		t.Error("a missing figure should be NaN")
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct {
		up, ours float64
		b        better
		u        unit
		want     string
	}{
		{106, 5618, betterHigher, unitRate, "×53 faster"},
		{0.154, 0.0029, betterLower, unitSeconds, "×53 faster"},
		{0.010, 0.021, betterLower, unitSeconds, "×2.1 slower"},
		{200, 100, betterHigher, unitRate, "×2.0 slower"},
		{1000, 500, betterLower, unitBytes, "×2.0 smaller"},
		{1000, 3000, betterLower, unitBytes, "×3.0 larger"},
		{100, 102, betterHigher, unitRate, "≈ same"},
		{100, 12345, betterHigher, unitRate, "×123 faster"},
		{100, 200000, betterHigher, unitRate, "×2,000 faster"},
		{100, 200, betterNone, unitCount, ""},
		{0, 200, betterHigher, unitRate, ""},
		{math.NaN(), 200, betterHigher, unitRate, ""},
	} {
		if got := formatRatio(c.up, c.ours, c.b, c.u); got != c.want {
			t.Errorf("formatRatio(%v, %v) = %q, want %q", c.up, c.ours, got, c.want)
		}
	}
	for v, want := range map[float64]string{0: "0", 0.000850: "850 µs", 0.00123: "1.23 ms", 0.154: "154 ms", 2.41: "2.41 s", 0.0215: "21.5 ms", 125: "125 s"} {
		if got := formatSeconds(v); got != want {
			t.Errorf("formatSeconds(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{512: "512 B", 690 * 1024: "690 KiB", 6.74 * 1024 * 1024: "6.74 MiB", -157.74 * 1024 * 1024: "-158 MiB"} {
		if got := formatBytes(v); got != want {
			t.Errorf("formatBytes(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", 2.5: "2.5", 100000: "100,000"} {
		if got := groupDigits(v); got != want {
			t.Errorf("groupDigits(%v) = %q, want %q", v, got, want)
		}
	}
	if got := formatValue(math.NaN(), unitRate); got != "–" {
		t.Errorf("NaN prints %q", got)
	}
	if got := formatValue(105.6, unitRate); got != "106/s" {
		t.Errorf("rate prints %q", got)
	}
	if got := shortSeconds(0.002); got != "2 ms" {
		t.Errorf("shortSeconds(0.002) = %q", got)
	}
	if got := shellQuote("--groups=100,1000"); got != "--groups=100,1000" {
		t.Errorf("shellQuote plain = %q", got)
	}
	if got := shellQuote("a b'c"); got != `'a b'\''c'` {
		t.Errorf("shellQuote = %q", got)
	}
}

func TestParsing(t *testing.T) {
	if got, err := parseInts("100, 1_000,10000"); err != nil || len(got) != 3 || got[1] != 1000 {
		t.Errorf("parseInts: %v %v", got, err)
	}
	for _, bad := range []string{"", "0", "x", "-5"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q) accepted", bad)
		}
	}
	if _, err := parseList("ours-1,nope", allTargets...); err == nil {
		t.Error("unknown target accepted")
	}
	cfg, err := parseFlags([]string{"--quick"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.groups) != 2 || cfg.groups[1] != 1000 || cfg.duration != 3*time.Second {
		t.Errorf("--quick: groups %v duration %v", cfg.groups, cfg.duration)
	}
	cfg, err = parseFlags([]string{"--quick", "--groups=10", "--duration=300ms", "--huge", "--method=put,post"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.groups) != 1 || cfg.duration != 300*time.Millisecond || len(cfg.methods) != 2 {
		t.Errorf("explicit flags lost under --quick: %+v", cfg)
	}
	if s := cfg.sizes(); len(s) != 2 || s[1] != 100000 {
		t.Errorf("--huge sizes %v", s)
	}
	if tg := cfg.targetsFor(100000); len(tg) != 2 || tg[0] != targetOurs1 {
		t.Errorf("upstream must not run at 100,000 groups: %v", tg)
	}
	if _, err := parseFlags([]string{"--rounds=0"}, &bytes.Buffer{}); err == nil {
		t.Error("--rounds=0 accepted")
	}
	for _, bad := range [][]string{{"--soak-cycles=1000"}, {"--soak=1m", "--soak-cycles=-1"}, {"--soak=-1s"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if cfg, err := parseFlags([]string{"--soak=1m", "--soak-cycles=1000"}, &bytes.Buffer{}); err != nil || cfg.soakCycles != 1000 {
		t.Errorf("--soak=1m --soak-cycles=1000: %v", err)
	}
	if v, err := parseStatusBytes([]byte("Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t   12345 kB\nRssAnon:\t  777 kB\n"), "VmRSS"); err != nil || v != 12345*1024 {
		t.Errorf("parseStatusBytes VmRSS: %v %v", v, err)
	}
	if v, err := parseStatusBytes([]byte("Name:\tx\nVmRSS:\t   12345 kB\nRssAnon:\t  777 kB\n"), "RssAnon"); err != nil || v != 777*1024 {
		t.Errorf("parseStatusBytes RssAnon: %v %v", v, err)
	}
	if m := cpuModel([]byte("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nflags\t: x\n")); m != "Some CPU @ 2.0GHz" {
		t.Errorf("cpuModel: %q", m)
	}
	v, ok, err := findSample(strings.NewReader("# TYPE bench_convergence gauge\nbench_convergence{instance=\"convergence\",job=\"bench\"} 17\nx 1\n"), "bench_convergence{")
	if err != nil || !ok || v != 17 {
		t.Errorf("findSample: %v %v %v", v, ok, err)
	}
}

func TestRendering(t *testing.T) {
	cfg, err := parseFlags([]string{"--groups=1000", "--convergence=5", "--out-md=out/B.md", "--out-png=out/docs/b.png"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	r := &report{cfg: cfg, env: environment{cpus: 2, cpuModel: "Test CPU", goVersion: "go1.x", upstreamVersion: "pushgateway 1.5.1"},
		byG: map[int]map[string]figures{1000: {
			targetUpstream: {"fill.groups": 1000, "push.put.c16.rate": 106, "push.put.c16.p50": 0.154, "scrape.text.p50": 0.021, "scrape.text.bytes": 690 * 1024},
			targetOurs1:    {"fill.groups": 1000, "push.put.c16.rate": 5618, "push.put.c16.p50": 0.0029, "scrape.text.p50": 0.042, "scrape.text.bytes": 700 * 1024},
			targetOurs3:    {"fill.groups": 1000, "push.put.c16.rate": 2120, "push.put.c16.p50": 0.0077, "conv.p99": 0.012, "conv_index.p99": 0.004},
		}}}
	r.addNote(1000, targetUpstream, "fill capped")
	md := r.markdown()
	for _, want := range []string{
		"| figure | upstream | ours-1 | ours-3 | ours-1 vs upstream | ours-3 vs upstream |",
		"| push PUT, 16 clients: throughput | 106/s | 5,618/s | 2,120/s | ×53 faster | ×20 faster |",
		"| push PUT, 16 clients: p50 | 154 ms | 2.90 ms | 7.70 ms | ×53 faster | ×20 faster |",
		"| scrape text: p50 | 21.0 ms | 42.0 ms | – | ×2.0 slower |  |",
		"| convergence (3 nodes): p99 | – | – | 12.0 ms |  |  |",
		"| convergence by applied index (3 nodes): p99 | – | – | 4.00 ms |  |  |",
		"2 CPUs (nproc), Test CPU", "go1.x", "pushgateway 1.5.1", "`go run ./cmd/pgbench --groups=1000",
		"](docs/b.png)", "## G = 1,000 groups × 10 families", "- G=1000 upstream: fill capped",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "push PUT, 1 client: p99") {
		t.Error("rows with no figure at all should be left out")
	}
	txt := r.textTable(1000)
	if !strings.Contains(txt, "×53 faster") || !strings.Contains(txt, "== G = 1,000 groups") {
		t.Errorf("text table:\n%s", txt)
	}
	b, err := renderPlot(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("plot is not a PNG: %v", err)
	}
	// A capped upstream fill marks the ratios.
	r.byG[1000][targetUpstream]["fill.groups"] = 400
	if md := r.markdown(); !strings.Contains(md, "| ×53 faster † |") || !strings.Contains(md, "† upstream holds 400 groups here") {
		t.Errorf("unequal stores not marked:\n%s", md)
	}
	// No upstream: no ratio columns.
	cfg.targets = []string{targetOurs1}
	if h, _ := r.cells(1000); len(h) != 2 {
		t.Errorf("header without upstream: %v", h)
	}
}

// gateway is our binary, built once for the tests that run it
// (gatewayBinary) and removed by TestMain.
var gateway struct {
	once      sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if gateway.dir != "" {
		os.RemoveAll(gateway.dir)
	}
	os.Exit(code)
}

// gatewayBinary builds our binary the first time a test asks for it.
func gatewayBinary(t *testing.T) string {
	t.Helper()
	gateway.once.Do(func() {
		if gateway.dir, gateway.err = os.MkdirTemp("", "pgbench-test-bin"); gateway.err == nil {
			gateway.path, gateway.err = procs.Build(gateway.dir, "./cmd/pushgateway-cluster")
		}
	})
	if gateway.err != nil {
		t.Fatal(gateway.err)
	}
	return gateway.path
}

// TestSoakEndsAfterItsCycles soaks one node of ours with --soak-cycles: the
// soak stops after that many cycles, long before its time bound, and its
// second half (from half the cycles on) is sampled.
func TestSoakEndsAfterItsCycles(t *testing.T) {
	bin := gatewayBinary(t)
	cfg, err := parseFlags([]string{"--binary=" + bin, "--request-timeout=10s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.binaryAbs = bin
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, err := startTarget(ctx, cfg, targetOurs1)
	if err != nil {
		t.Fatal(err)
	}
	defer in.stop()
	if err := waitReady(ctx, in, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	l := newLoader(cfg, in)
	defer l.close()
	// About 3 s at the 2,500 cycles a second of 10 groups on one node, a
	// sample every 0.83 s.
	const cycles, bound = 8000, 40 * time.Second
	res, err := l.soak(ctx, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, bound, cycles, in.nodes[0].rss)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d cycles in %v, RSS %.0f → %.0f → %.0f MiB", res.ops, res.elapsed, res.rssStart/(1<<20), res.rssHalf/(1<<20), res.rssEnd/(1<<20))
	// Clients finishing a cycle when the last one is counted may add one
	// each; a cycle whose delete the end cuts short is not counted.
	if res.ops < cycles || res.ops >= cycles+16 || res.errors != 0 {
		t.Errorf("soak of %d cycles made %d, %d errors (first: %s)", cycles, res.ops, res.errors, res.first)
	}
	if res.elapsed >= bound {
		t.Errorf("soak of %d cycles took its whole bound, %v", cycles, res.elapsed)
	}
	if res.rssStart <= 0 || res.rssHalf <= 0 || res.rssEnd <= 0 || res.liveHalf <= 0 || res.liveEnd <= 0 {
		t.Errorf("soak did not measure its start, half and end: %+v", res)
	}
}

// TestSmoke runs the whole tool in --quick mode with tiny settings against
// our binary as one node and as a 3-node cluster (and upstream when Debian's
// binary is installed).
func TestSmoke(t *testing.T) {
	begin := time.Now()
	dir := t.TempDir()
	bin := gatewayBinary(t)
	targets := "ours-1,ours-3"
	if _, err := os.Stat("/usr/bin/prometheus-pushgateway"); err == nil {
		targets = "upstream," + targets
	}
	md, pngPath := filepath.Join(dir, "B.md"), filepath.Join(dir, "docs", "bench.png")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"--quick", "--groups=10", "--duration=300ms", "--scrapes=3", "--convergence=5", "--soak=600ms",
		"--fill-timeout=10s", "--start-timeout=20s", "--request-timeout=10s",
		"--targets=" + targets, "--binary=" + bin, "--out-md=" + md, "--out-png=" + pngPath, "--profile-dir=" + filepath.Join(dir, "prof")}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"== G = 10 groups", "ours-1", "ours-3", "convergence (3 nodes): p99", "convergence by applied index (3 nodes): p99", "push PUT, 16 clients: throughput", "scrape of a follower with read index (3 nodes): p99", "scrape of a follower stale (?stale) (3 nodes): p50", "soak: RSS at end (largest node)", "soak: anonymous RSS at end (first node)", "soak: live heap at end (first node)", "live heap per stored series", "scrape text with gzip, as Prometheus asks: p50", "snapshot of the whole state: size"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		var values []string
		switch {
		case strings.HasPrefix(line, "groups stored by the fill"):
			values = strings.Fields(strings.TrimPrefix(line, "groups stored by the fill"))
			for _, v := range values {
				if v != "10" {
					t.Errorf("fill did not store 10 groups: %q", line)
				}
			}
		case strings.Contains(line, ": errors"):
			_, rest, _ := strings.Cut(line, ": errors")
			for _, v := range strings.Fields(rest) {
				if v != "0" {
					t.Errorf("errors in a smoke run: %q\nstderr:\n%s", line, stderr.String())
				}
			}
		}
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "## G = 10 groups") || !strings.Contains(string(b), "](docs/bench.png)") {
		t.Errorf("markdown:\n%s", b)
	}
	// Profiles of our targets, saved and summarised.
	for _, target := range []string{"ours-1", "ours-3"} {
		for _, p := range []struct{ file, title string }{
			{target + "-G10-heap.pb.gz", "### G=10 " + target + ": heap in use after the fill"},
			{target + "-G10-cpu-push.pb.gz", "### G=10 " + target + ": CPU of the push phase (PUT, 16 clients)"},
		} {
			if _, err := os.Stat(filepath.Join(dir, "prof", p.file)); err != nil {
				t.Errorf("profile not saved: %v", err)
			}
			section, ok := strings.CutPrefix(string(b)[max(0, strings.Index(string(b), p.title)):], p.title)
			if !ok || !strings.Contains(section[:min(len(section), 400)], "Showing nodes accounting for") {
				t.Errorf("markdown lacks the summary %q:\n%s", p.title, b)
			}
		}
	}
	if strings.Contains(string(b), "upstream: heap") {
		t.Errorf("upstream profiled:\n%s", b)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("png: %v", err)
	}
	// Every temp dir of the targets is gone.
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgbench-*"))
	for _, l := range left {
		if fi, err := os.Stat(l); err == nil && fi.ModTime().After(begin) {
			t.Errorf("temp dir left behind: %s", l)
		}
	}
	t.Logf("smoke run took %v\n%s", time.Since(begin).Round(time.Millisecond), out)
}
