package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// figures are the measurements of one run of one target at one G, by key
// (see rows). A missing key was not measured.
type figures map[string]float64

func (f figures) get(key string) float64 {
	if v, ok := f[key]; ok {
		return v
	}
	return math.NaN()
}

// setLatency records s as the figures key.p50, key.p99 and key.max.
func (f figures) setLatency(key string, s latencySummary) {
	f[key+".p50"], f[key+".p99"], f[key+".max"] = s.p50.Seconds(), s.p99.Seconds(), s.max.Seconds()
}

// aggregate combines the rounds of one target: the median of every figure,
// except error counts (summed over the rounds) and the capped flag (set when
// any round was capped).
func aggregate(rounds []figures) figures {
	vals := map[string][]float64{}
	for _, r := range rounds {
		for k, v := range r {
			vals[k] = append(vals[k], v)
		}
	}
	out := figures{}
	for k, vs := range vals {
		switch {
		case strings.HasSuffix(k, ".errors"):
			s := 0.0
			for _, v := range vs {
				s += v
			}
			out[k] = s
		case k == "fill.capped":
			m := 0.0
			for _, v := range vs {
				m = math.Max(m, v)
			}
			out[k] = m
		default:
			out[k] = median(vs)
		}
	}
	return out
}

// row is one line of a table.
type row struct {
	key, label string
	unit       unit
	better     better
}

// rows are the lines of a table, in order, for this configuration.
func (c *config) rows() []row {
	rs := []row{
		{"fill.groups", "groups stored by the fill", unitCount, betterNone},
		{"fill.capped", fmt.Sprintf("fill capped at %v", c.fillTimeout), unitFlag, betterNone},
		{"fill.rate", fmt.Sprintf("fill: pushes/s (PUT, %d clients)", c.fillClients), unitRate, betterHigher},
		{"fill.time", "fill: time", unitSeconds, betterNone},
		{"fill.errors", "fill: errors", unitCount, betterNone},
	}
	for _, m := range c.methods {
		for _, n := range c.clients {
			k := pushKey(m, n)
			p := fmt.Sprintf("push %s, %d client", strings.ToUpper(m), n)
			if n != 1 {
				p += "s"
			}
			rs = append(rs,
				row{k + ".rate", p + ": throughput", unitRate, betterHigher},
				row{k + ".p50", p + ": p50", unitSeconds, betterLower},
				row{k + ".p99", p + ": p99", unitSeconds, betterLower},
				row{k + ".max", p + ": max", unitSeconds, betterLower},
				row{k + ".errors", p + ": errors", unitCount, betterNone},
			)
		}
	}
	for _, f := range []struct{ key, name string }{{"text", "text"}, {"proto", "protobuf"}, {"gzip", "text with gzip, as Prometheus asks"}} {
		rs = append(rs,
			row{"scrape." + f.key + ".p50", "scrape " + f.name + ": p50", unitSeconds, betterLower},
			row{"scrape." + f.key + ".max", "scrape " + f.name + ": max", unitSeconds, betterLower},
			row{"scrape." + f.key + ".bytes", "scrape " + f.name + ": size", unitBytes, betterNone},
		)
	}
	for _, f := range []struct{ key, name string }{{"follower_ri", "with read index"}, {"follower_stale", "stale (?stale)"}} {
		rs = append(rs,
			row{"scrape." + f.key + ".p50", "scrape of a follower " + f.name + " (3 nodes): p50", unitSeconds, betterLower},
			row{"scrape." + f.key + ".p99", "scrape of a follower " + f.name + " (3 nodes): p99", unitSeconds, betterLower},
		)
	}
	if c.convergence > 0 {
		rs = append(rs,
			row{"conv.p50", "convergence (3 nodes): p50", unitSeconds, betterLower},
			row{"conv.p99", "convergence (3 nodes): p99", unitSeconds, betterLower},
			row{"conv.max", "convergence (3 nodes): max", unitSeconds, betterLower},
			row{"conv_index.p50", "convergence by applied index (3 nodes): p50", unitSeconds, betterLower},
			row{"conv_index.p99", "convergence by applied index (3 nodes): p99", unitSeconds, betterLower},
			row{"conv_index.max", "convergence by applied index (3 nodes): max", unitSeconds, betterLower},
		)
	}
	rs = append(rs,
		row{"mem.rss_start", "RSS at start (largest node)", unitBytes, betterNone},
		row{"mem.rss", "RSS after fill (largest node)", unitBytes, betterLower},
		row{"soak.ops", "soak (--soak, --soak-cycles): delete+push cycles", unitCount, betterNone},
		row{"soak.time", "soak: time", unitSeconds, betterNone},
		row{"soak.rate", "soak: cycles/s", unitRate, betterHigher},
		row{"soak.rss_start", "soak: RSS at start (largest node)", unitBytes, betterNone},
		row{"soak.rss_half", "soak: RSS halfway (largest node; half the time, or half the cycles with --soak-cycles)", unitBytes, betterNone},
		row{"soak.rss_end", "soak: RSS at end (largest node)", unitBytes, betterLower},
		row{"soak.rss_max", "soak: RSS max (largest node)", unitBytes, betterLower},
		row{"soak.rss_low2", "soak: RSS in the second half, lowest sample (largest node; the samples from halfway to the end)", unitBytes, betterNone},
		row{"soak.rss_high2", "soak: RSS in the second half, highest sample (largest node)", unitBytes, betterLower},
		row{"soak.rss_slope2", "soak: RSS trend in the second half (largest node; least-squares change per minute, flat is about 0)", unitBytes, betterNone},
		row{"soak.anon_start", "soak: anonymous RSS at start (first node; RssAnon: heap and stacks, not mapped files)", unitBytes, betterNone},
		row{"soak.anon_end", "soak: anonymous RSS at end (first node)", unitBytes, betterLower},
		row{"soak.live_start", "soak: live heap at start (first node, right after a collection)", unitBytes, betterNone},
		row{"soak.live_half", "soak: live heap halfway (first node)", unitBytes, betterNone},
		row{"soak.live_end", "soak: live heap at end (first node)", unitBytes, betterLower},
		row{"soak.errors", "soak: errors", unitCount, betterNone},
		row{"mem.per_series", fmt.Sprintf("RSS per stored series (G×%d)", c.families+2), unitBytes, betterLower},
		row{"mem.live", "live heap after fill (first node, right after a collection)", unitBytes, betterLower},
		row{"mem.live_per_series", "live heap per stored series", unitBytes, betterLower},
		row{"snapshot.time", "snapshot of the whole state (GET /api/v1/admin/snapshot, the raft snapshot's encoding): time", unitSeconds, betterLower},
		row{"snapshot.bytes", "snapshot of the whole state: size", unitBytes, betterNone},
		row{"disk.bytes", "storage on disk after the run (largest node: log, snapshots)", unitBytes, betterNone},
		row{"restart.ready", "kill -9 of every node, restart to ready (ours; ours-3: the whole cluster)", unitSeconds, betterLower},
		row{"restart.restore", "restart: restore of the snapshot (first node, from its log)", unitSeconds, betterLower},
		row{"restart.replayed", "restart: log entries applied after the snapshot before ready (first node)", unitCount, betterNone},
	)
	return rs
}

// environment describes the machine and the binaries.
type environment struct {
	date            time.Time
	cpus            int
	cpuModel        string
	goVersion       string
	kernel          string
	upstreamVersion string
	oursVersion     string
}

func (e *environment) fill() {
	e.date = time.Now().UTC()
	e.cpus = runtime.NumCPU()
	e.goVersion = runtime.Version()
	e.cpuModel = "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		e.cpuModel = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.kernel = "Linux " + strings.TrimSpace(string(b))
	}
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

type report struct {
	cfg      *config
	env      environment
	byG      map[int]map[string]figures // G → target → aggregated figures
	notes    []string
	profiles []profileSummary
	failures []string
	elapsed  time.Duration
}

func (r *report) addNote(G int, target, note string) {
	r.notes = append(r.notes, fmt.Sprintf("G=%d %s: %s", G, target, note))
}

// cells is the table at G: a header and one line per row with a value per
// target and, when upstream ran, the ratio of each of our targets to it.
func (r *report) cells(G int) (header []string, lines [][]string) {
	targets := r.cfg.targetsFor(G)
	agg := r.byG[G]
	header = append([]string{"figure"}, targets...)
	var ours []string
	hasUp := false
	for _, t := range targets {
		if t == targetUpstream {
			hasUp = true
		} else {
			ours = append(ours, t)
		}
	}
	if hasUp {
		for _, t := range ours {
			header = append(header, t+" vs upstream")
		}
	}
	for _, rw := range r.cfg.rows() {
		line := []string{rw.label}
		measured := false
		for _, t := range targets {
			v := agg[t].get(rw.key)
			measured = measured || !math.IsNaN(v)
			line = append(line, formatValue(v, rw.unit))
		}
		if !measured {
			continue
		}
		if hasUp {
			up := agg[targetUpstream].get(rw.key)
			for _, t := range ours {
				ratio := formatRatio(up, agg[t].get(rw.key), rw.better, rw.unit)
				if ratio != "" && r.unequalStores(G, t) {
					ratio += " " + unequalMark
				}
				line = append(line, ratio)
			}
		}
		lines = append(lines, line)
	}
	return header, lines
}

// unequalMark flags a ratio between stores of different sizes.
const unequalMark = "†"

// unequalStores reports whether upstream's fill stored a different number
// of groups than target's at G (upstream's fill was capped), so that a
// ratio compares unequal stores.
func (r *report) unequalStores(G int, target string) bool {
	up, ours := r.byG[G][targetUpstream].get("fill.groups"), r.byG[G][target].get("fill.groups")
	return !math.IsNaN(up) && !math.IsNaN(ours) && up != ours
}

// footnote explains unequalMark when the table at G uses it.
func (r *report) footnote(G int) string {
	for _, t := range r.cfg.targetsFor(G) {
		if t != targetUpstream && r.unequalStores(G, t) {
			return fmt.Sprintf("%s upstream holds %s groups here (its fill was capped at %v), ours %s: these ratios compare unequal stores.",
				unequalMark, groupDigits(r.byG[G][targetUpstream].get("fill.groups")), r.cfg.fillTimeout,
				groupDigits(r.byG[G][t].get("fill.groups")))
		}
	}
	return ""
}

func (r *report) title(G int) string {
	return fmt.Sprintf("G = %s groups × %d families", groupDigits(float64(G)), r.cfg.families)
}

// textTable is the table at G for a terminal.
func (r *report) textTable(G int) string {
	header, lines := r.cells(G)
	var b strings.Builder
	b.WriteString("== " + r.title(G) + " ==\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, l := range lines {
		fmt.Fprintln(tw, strings.Join(l, "\t"))
	}
	tw.Flush()
	if fn := r.footnote(G); fn != "" {
		b.WriteString(fn + "\n")
	}
	return b.String()
}

// markdownTable is the table at G in Markdown.
func (r *report) markdownTable(G int) string {
	header, lines := r.cells(G)
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for i := range header {
		if i == 0 {
			b.WriteString(" --- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteString("\n")
	for _, l := range lines {
		esc := make([]string, len(l))
		for i, c := range l {
			esc[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		b.WriteString("| " + strings.Join(esc, " | ") + " |\n")
	}
	return b.String()
}

// commandLine is how the tool was invoked, shell-quoted.
func (r *report) commandLine() string {
	parts := []string{"go run ./cmd/pgbench"}
	for _, a := range r.cfg.args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_=.,/:@+", c))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (r *report) workload() string {
	c := r.cfg
	var gs []string
	for _, g := range c.sizes() {
		gs = append(gs, groupDigits(float64(g)))
	}
	var cl []string
	for _, n := range c.clients {
		cl = append(cl, strconv.Itoa(n))
	}
	conv := "none"
	if c.convergence > 0 {
		conv = fmt.Sprintf("%d samples of each kind on ours-3, alternating: PUT to node i round-robin, then poll the other two nodes without sleeping, either `/metrics` until both serve the value (\"convergence\"; every poll is a full scrape), or the small `/api/v1/status` until both answer with an applied log index (`%s`) at least that of the write's acknowledgement (\"convergence by applied index\"; from then on every read of those nodes shows the value)", c.convergence, indexHeader)
	}
	return fmt.Sprintf(`- Groups G: %s (upstream up to %s); every target is started fresh (new processes, temp storage, free ports on 127.0.0.1) for every G and killed afterwards.
- Push body: M = %d gauge families in the text format, one sample with a label each (`+"`/metrics/job/bench/instance/<i>`"+`).
- Fill: PUT every group once from %d clients, capped at %v (a capped fill reports the groups reached and its rate; the later phases use those groups).
- Push: %s to random existing groups for %v with %s concurrent client(s); every latency is recorded (request sent to answer read); a non-2xx answer is an error and not in the latencies; throughput counts successful pushes. ours-3 gets the pushes round-robin on its three nodes (writes go through the raft log with fsync).
- Scrape: %d GETs of `+"`/metrics`"+` per format on one node, text (`+"`%s`"+`) and delimited protobuf, `+"`Accept-Encoding: identity`"+`, and text with `+"`Accept-Encoding: gzip`"+` (the compressed body read as it comes); one uncounted push to the same node before each scrape.
- Convergence: %s.
- Memory: VmRSS of /proc/PID/status right after the fill (ours-3: the node with the largest RSS); per stored series = (RSS after fill − RSS at start) / (groups × (M+2)), the +2 being push_time_seconds and push_failure_time_seconds.
- Restart (ours only, last): the files under the largest node's --storage.path are summed (log segments count at their preallocated size), then every node is killed with SIGKILL and started again at once on its storage; the figure is the time until every node answers `+"`/-/ready`"+` with 200 (ours-3: the whole cluster). The first node's log says how long it restored its snapshot and how many log entries it applied after it before it was ready.
- The load generator (this tool) runs on the same machine and shares its CPUs with the gateways; so do the three nodes of ours-3.
- Rounds: %d, the order of targets alternating on even rounds (upstream, ours-1, ours-3, then reversed); each figure is the median over the rounds (error counts are summed).`,
		strings.Join(gs, ", "), groupDigits(float64(c.upstreamMaxGroups)), c.families, c.fillClients, c.fillTimeout,
		strings.ToUpper(strings.Join(c.methods, " and ")), c.duration, strings.Join(cl, " and "),
		c.scrapes, acceptText, conv, c.rounds)
}

// markdown is the whole report.
func (r *report) markdown() string {
	var b strings.Builder
	e := r.env
	b.WriteString("# Benchmarks: pushgateway-cluster vs. upstream Pushgateway\n\n")
	b.WriteString("Measured by `cmd/pgbench` (`make bench-compare`), which speaks only HTTP to every gateway, so upstream and ours are measured the same way.\n\n")
	fmt.Fprintf(&b, "- Date: %s (run took %v)\n", e.date.Format("2006-01-02 15:04 UTC"), r.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "- Machine: %d CPUs (nproc), %s", e.cpus, e.cpuModel)
	if e.kernel != "" {
		fmt.Fprintf(&b, ", %s", e.kernel)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "- Go: %s\n", e.goVersion)
	if e.upstreamVersion != "" {
		fmt.Fprintf(&b, "- upstream: `%s` (%s)\n", r.cfg.upstreamBin, e.upstreamVersion)
	}
	if e.oursVersion != "" {
		fmt.Fprintf(&b, "- ours: `%s` (%s); ours-1 = one node, ours-3 = three nodes on loopback\n", r.cfg.binary, e.oursVersion)
	}
	fmt.Fprintf(&b, "- Command: `%s`\n\n", r.commandLine())
	b.WriteString("## Workload\n\n" + r.workload() + "\n\n")
	b.WriteString("Ratios compare each of our targets with upstream in the same run and say which way is better: " +
		"\"×53 faster\" means 53 times the throughput or 1/53 of the latency; \"×2.0 slower\" means upstream is 2 times better; " +
		"for memory \"smaller\"/\"larger\". \"–\" means not measured.\n\n")
	if r.cfg.outPNG != "" {
		rel := r.cfg.outPNG
		if r.cfg.outMD != "" {
			if p, err := filepath.Rel(filepath.Dir(r.cfg.outMD), r.cfg.outPNG); err == nil {
				rel = p
			}
		}
		fmt.Fprintf(&b, "![push and scrape latency vs. groups](%s)\n\n", filepath.ToSlash(rel))
	}
	gs := make([]int, 0, len(r.byG))
	for g := range r.byG {
		gs = append(gs, g)
	}
	sort.Ints(gs)
	for _, g := range gs {
		b.WriteString("## " + r.title(g) + "\n\n")
		b.WriteString(r.markdownTable(g) + "\n")
		if fn := r.footnote(g); fn != "" {
			b.WriteString(fn + "\n\n")
		}
	}
	b.WriteString(r.profilesMarkdown())
	if len(r.notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.notes {
			b.WriteString("- " + strings.ReplaceAll(n, "\n", " ") + "\n")
		}
		b.WriteString("\n")
	}
	if len(r.failures) > 0 {
		b.WriteString("## Failed runs\n\n")
		for _, f := range r.failures {
			b.WriteString("- " + f + "\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// writeFile writes atomically (temp file and rename), creating the directory.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pgbench-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
