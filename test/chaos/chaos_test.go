package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// config is one run's shape, from the environment.
type config struct {
	long     bool
	duration time.Duration
	clients  int
	keys     int
	seed     int64
}

func configFromEnv(t *testing.T) config {
	t.Helper()
	cfg := config{duration: 20 * time.Second, clients: 6, keys: 5, seed: time.Now().UnixNano()}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_DURATION=%q: want a duration like 120s", v)
		}
		cfg.long, cfg.duration = true, d
	}
	for name, dst := range map[string]*int{"CHAOS_CLIENTS": &cfg.clients, "CHAOS_KEYS": &cfg.keys} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive number", name, v)
			}
			*dst = n
		}
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an integer", v)
		}
		cfg.seed = s
	}
	return cfg
}

// TestChaos runs the workload through the nemesis schedule and checks the
// history. Short by default (make test); CHAOS_DURATION=120s for the long
// version with every fault, alone and combined (make chaos).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test: three node processes and fault injection for about 30 s; skipped with -short")
	}
	cfg := configFromEnv(t)
	const nodes = 3
	nw := setupNetwork(t, nodes)
	schedule := shortSchedule(nw.canPartition())
	if cfg.long {
		var dropped []string
		schedule, dropped = filterSchedule(longSchedule(), nw.canPartition())
		if len(dropped) > 0 {
			t.Logf("skipped (no network namespaces: %s): %s", nw.reason, strings.Join(dropped, "; "))
		}
	}
	if spec := os.Getenv("CHAOS_SCHEDULE"); spec != "" {
		s, err := parseSchedule(spec)
		if err != nil {
			t.Fatalf("CHAOS_SCHEDULE: %v", err)
		}
		var dropped []string
		if schedule, dropped = filterSchedule(s, nw.canPartition()); len(dropped) > 0 || len(schedule) == 0 {
			t.Fatalf("CHAOS_SCHEDULE: partitions impossible here (%s): %s", nw.reason, strings.Join(dropped, "; "))
		}
	}
	rng := rand.New(rand.NewSource(cfg.seed))

	c := startCluster(t, nw, nodes)
	if _, err := c.waitHealthy(60 * time.Second); err != nil {
		dumpLogs(t, c)
		t.Fatal(err)
	}
	base := time.Now()
	mon := startMonitor(c, base)
	keys := make([]string, cfg.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i+1)
	}
	w := &workload{c: c, keys: keys, clients: cfg.clients, seed: cfg.seed, base: base}
	w.start()

	// The nemesis schedule: every listed fault once, then (long version)
	// random ones while time remains.
	var faults []faultRecord
	var failed []string
	run := func(nm nemesis) bool {
		rec := runNemesis(c, base, nm, rng)
		faults = append(faults, rec)
		t.Logf("fault %-42s victims %-5s at %6.1fs held %5.1fs recovered in %v %s %s",
			rec.Name, rec.Victims, rec.At.Seconds(), rec.Held.Seconds(), rec.Recover.Round(time.Millisecond), rec.Detail, rec.Err)
		if rec.Err != "" {
			failed = append(failed, rec.Name+": "+rec.Err)
		}
		time.Sleep(time.Second) // quiet time between faults
		return !rec.Unrecovered
	}
	time.Sleep(2 * time.Second) // warm-up before the first fault
	ok := true
	for _, nm := range schedule {
		if ok = run(nm); !ok {
			break
		}
	}
	for ok && cfg.long && time.Since(base) < cfg.duration-12*time.Second {
		ok = run(schedule[rng.Intn(len(schedule))])
	}
	if rest := cfg.duration - time.Since(base); rest > 0 {
		time.Sleep(rest)
	}
	ops := w.finish()
	workloadTime := time.Since(base)
	for _, e := range healEverything(c) {
		failed = append(failed, "final heal: "+e)
	}

	// Convergence: healthy, in-flight writes settled, a barrier write
	// through every node, every node applied past it.
	conv, err := converge(c)
	leaders, polls := mon.finish()
	if err != nil {
		failed = append(failed, "convergence: "+err.Error())
	}

	// Final state of every node.
	views := make([]nodeView, len(c.nodes))
	for i, n := range c.nodes {
		views[i], err = readFinal(n)
		if err != nil {
			failed = append(failed, err.Error())
		}
	}
	diverged := 0
	var problems []string
	for i := 1; i < len(views); i++ {
		if !bytes.Equal(views[i].api, views[0].api) || views[i].pushed != views[0].pushed {
			diverged++
			problems = append(problems, fmt.Sprintf("%s serves other pushed data than %s: /api/v1/metrics equal %v, pushed /metrics equal %v",
				c.nodes[i].name, c.nodes[0].name, bytes.Equal(views[i].api, views[0].api), views[i].pushed == views[0].pushed))
		}
	}
	var rep Report
	for i, v := range views {
		if i > 0 && bytes.Equal(v.api, views[0].api) {
			continue // same bytes, same verdict
		}
		problems = append(problems, v.problems...)
		r := checkHistory(ops, keys, v.states)
		if i == 0 {
			rep = r
		}
		for _, p := range r.Problems {
			problems = append(problems, c.nodes[i].name+": "+p)
		}
	}
	problems = append(problems, termLeaders(leaders)...)
	minority, minorityProblems := checkMinorities(ops, faults)
	problems = append(problems, minorityProblems...)

	// The figures.
	counts := map[Outcome]int{}
	var unknown504 int
	for _, o := range ops {
		counts[o.Result]++
		if o.Result == Unknown && o.Status == 504 {
			unknown504++
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "chaos run: %d nodes on %s, %d clients, %d keys, workload %v (ran %v), seed %d\n",
		nodes, describeNetwork(nw), cfg.clients, cfg.keys, cfg.duration, workloadTime.Round(100*time.Millisecond), cfg.seed)
	fmt.Fprintf(&sb, "%-44s %-8s %8s %7s %10s\n", "fault", "victims", "at", "held", "recovered")
	for _, f := range faults {
		rec := f.Recover.Round(time.Millisecond).String()
		if f.Unrecovered {
			rec = "FAILED"
		} else if f.Err != "" {
			rec += " (!)"
		}
		fmt.Fprintf(&sb, "%-44s %-8s %7.1fs %6.1fs %10s\n", f.Name, f.Victims, f.At.Seconds(), f.Held.Seconds(), rec)
	}
	for _, f := range faults {
		if f.Err != "" {
			fmt.Fprintf(&sb, "  (!) %s at %.1fs: %s\n", f.Name, f.At.Seconds(), f.Err)
		}
	}
	fmt.Fprintf(&sb, "ops attempted %d: acknowledged %d, failed-503 %d, not sent %d (connection refused), unknown %d (504: %d, timeout or broken connection: %d), unexpected status %d\n",
		len(ops), counts[Acked], counts[Failed], counts[NotSent], counts[Unknown]+counts[Unexpected], unknown504,
		counts[Unknown]-unknown504, counts[Unexpected])
	fmt.Fprintf(&sb, "lost %d, diverged %d, keys not explained by the history %d\n", rep.Lost, diverged, countUnexplained(rep))
	for _, k := range rep.Keys {
		fmt.Fprintf(&sb, "  key %s: %d acknowledged, %d unknown, final %s\n", k.Key, k.Acked, k.Unknown, fmtState(k.Final))
	}
	maxLeaders := 0
	for _, l := range leaders {
		maxLeaders = max(maxLeaders, len(l))
	}
	for _, m := range minority {
		fmt.Fprintf(&sb, "%s\n", m)
	}
	fmt.Fprintf(&sb, "leaders: %d terms observed in %d confirmed polls, at most %d leader(s) per term\n", len(leaders), polls, maxLeaders)
	fmt.Fprintf(&sb, "convergence: barrier index %d applied on every node %v after the workload; /api/v1/metrics %d bytes, pushed /metrics %d lines, identical on %d of %d nodes\n",
		conv.barrier, conv.took.Round(time.Millisecond), len(views[0].api), strings.Count(views[0].pushed, "\n"), len(views)-diverged, len(views))
	t.Log("\n" + sb.String())

	if counts[Unexpected] > 0 {
		for _, o := range ops {
			if o.Result == Unexpected {
				problems = append(problems, fmt.Sprintf("unexpected answer %d to %s %s via %s: %s", o.Status, o.Kind, o.Key, o.Node, o.Err))
			}
		}
	}
	problems = append(failed, problems...)
	if len(problems) > 0 || os.Getenv("CHAOS_ARTIFACTS") != "" {
		saveArtifacts(t, c, ops, faults, views, sb.String(), problems)
	}
	if len(problems) > 0 {
		if len(problems) > 40 {
			problems = append(problems[:40], fmt.Sprintf("... and %d more", len(problems)-40))
		}
		dumpLogs(t, c)
		t.Fatalf("%d problem(s):\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// checkMinorities summarizes, per partition fault, the writes sent to the
// cut-off nodes while they were cut off, and reports any that was
// acknowledged (a minority cannot commit) and any read they failed.
func checkMinorities(ops []Op, faults []faultRecord) (lines, problems []string) {
	for _, f := range faults {
		if len(f.Cut) == 0 {
			continue
		}
		cut := map[string]bool{}
		for _, n := range f.Cut {
			cut[n] = true
		}
		// Writes through a cut node that started while it was cut off:
		// none may be acknowledged before the healing (it cannot reach a
		// quorum); after the healing it may complete them.
		counts := map[Outcome]int{}
		ackedAfter := 0
		for _, o := range ops {
			if !cut[o.Node] || o.Start <= f.CutFrom || o.Start >= f.CutUntil {
				continue
			}
			counts[o.Result]++
			if o.Result != Acked {
				continue
			}
			if o.End < f.CutUntil {
				problems = append(problems, fmt.Sprintf("%s: %s acknowledged %s %s (%s, index %d) while cut off from the majority",
					f.Name, o.Node, o.Kind, o.Key, o.ID, o.Index))
			} else {
				ackedAfter++
			}
		}
		if f.MinorityRead == "" {
			f.MinorityRead = "not probed (link mode: the cut node is unreachable)"
		} else if strings.Count(f.MinorityRead, "/api/v1/metrics 503") != len(f.Cut) ||
			strings.Count(f.MinorityRead, "?stale 200") != len(f.Cut) || strings.Count(f.MinorityRead, "/-/metrics 200") != len(f.Cut) {
			problems = append(problems, fmt.Sprintf("%s: a cut-off node served a current read, or no stale read or own metrics: %s", f.Name, f.MinorityRead))
		}
		lines = append(lines, fmt.Sprintf("minority during %s at %.1fs: writes sent to %s while cut off: ok before healing %d, ok after healing %d, 503 %d, 504/unknown %d; reads: %s",
			f.Name, f.At.Seconds(), strings.Join(f.Cut, ","), counts[Acked]-ackedAfter, ackedAfter, counts[Failed], counts[Unknown]+counts[Unexpected], f.MinorityRead))
	}
	return lines, problems
}

func describeNetwork(nw *network) string {
	if nw.netns && nw.linkMode {
		return "network namespaces (" + nw.subnet + ".0/24, partitions by link down)"
	}
	if nw.netns {
		return "network namespaces (" + nw.subnet + ".0/24, partitions by iptables)"
	}
	return "loopback (" + nw.reason + ")"
}

func countUnexplained(r Report) int {
	n := 0
	for _, k := range r.Keys {
		if !k.Explained {
			n++
		}
	}
	return n
}

type convergence struct {
	barrier uint64
	took    time.Duration
}

// converge waits for a healthy cluster, lets writes still in flight inside
// the nodes finish (a node paused with requests in its socket buffer
// handles them after SIGCONT, each within the write timeout), then writes
// a barrier through every node and waits until every node applied the
// highest barrier index. No client writes after that, so the states must
// be identical.
func converge(c *cluster) (convergence, error) {
	start := time.Now()
	var conv convergence
	if _, err := c.waitHealthy(60 * time.Second); err != nil {
		return conv, err
	}
	time.Sleep(writeTimeout + time.Second) // no observable condition: bounded settle time
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range c.nodes {
		for {
			res := probeWrite(ctx, n)
			if res.err == nil && res.status == 200 && res.index > 0 {
				conv.barrier = max(conv.barrier, res.index)
				break
			}
			if ctx.Err() != nil {
				return conv, fmt.Errorf("barrier write through %s: %d %v %s", n.name, res.status, res.err, res.body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, n := range c.nodes {
		for {
			st, err := n.status(ctx)
			if err == nil && st.Raft.AppliedIndex >= conv.barrier {
				break
			}
			if ctx.Err() != nil {
				return conv, fmt.Errorf("%s did not apply index %d: %+v %v", n.name, conv.barrier, st.Raft, err)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	conv.took = time.Since(start)
	return conv, nil
}

// nodeView is one node's final pushed data.
type nodeView struct {
	api      []byte // GET /api/v1/metrics
	pushed   string // the families of /metrics with a job label
	states   map[string]State
	problems []string
}

func readFinal(n *node) (nodeView, error) {
	var v nodeView
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	api, code, err := n.get(ctx, "/api/v1/metrics")
	if err != nil || code != 200 {
		return v, fmt.Errorf("GET /api/v1/metrics on %s: %d %v", n.name, code, err)
	}
	text, code, err := n.get(ctx, "/metrics")
	if err != nil || code != 200 {
		return v, fmt.Errorf("GET /metrics on %s: %d %v", n.name, code, err)
	}
	v.api, v.pushed = api, pushedFamilies(string(text))
	v.states, v.problems, err = parseStates(api)
	for i := range v.problems {
		v.problems[i] = n.name + ": " + v.problems[i]
	}
	return v, err
}

// pushedFamilies keeps the families (HELP, TYPE and samples) of a text
// exposition that have a sample with a job label: the pushed metrics,
// without the node's own.
func pushedFamilies(text string) string {
	var out strings.Builder
	var block []string
	name, keep := "", false
	flush := func() {
		if keep {
			for _, l := range block {
				out.WriteString(l + "\n")
			}
		}
		block, keep = nil, false
	}
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		sample := !strings.HasPrefix(line, "#")
		var n string
		if sample {
			n = line[:strings.IndexAny(line+" ", "{ ")]
			if name != "" && strings.HasPrefix(n, name) {
				n = name // _sum, _count, _bucket of the current family
			}
		} else if f := strings.Fields(line); len(f) >= 3 {
			n = f[2]
		}
		if n != name {
			flush()
			name = n
		}
		if sample && strings.Contains(line, `job="`) {
			keep = true
		}
		block = append(block, line)
	}
	flush()
	return out.String()
}

// parseStates reads every chaos key's state from /api/v1/metrics.
func parseStates(api []byte) (map[string]State, []string, error) {
	var env struct {
		Status string                       `json:"status"`
		Data   []map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(api, &env); err != nil {
		return nil, nil, fmt.Errorf("decode /api/v1/metrics: %w", err)
	}
	states := map[string]State{}
	var problems []string
	for _, g := range env.Data {
		var labels map[string]string
		if err := json.Unmarshal(g["labels"], &labels); err != nil {
			return nil, nil, fmt.Errorf("decode group labels: %w", err)
		}
		if labels["job"] != "chaos" {
			continue
		}
		key := labels["k"]
		var st State
		for name, raw := range g {
			switch name {
			case "labels", "push_time_seconds", "push_failure_time_seconds",
				"last_push_by", "expire_after", "expires_at":
				continue
			case "last_push_successful":
				if string(raw) != "true" {
					problems = append(problems, fmt.Sprintf("key %s: last_push_successful %s (a push was rejected)", key, raw))
				}
				continue
			case "chaos_a", "chaos_b":
			default:
				problems = append(problems, fmt.Sprintf("key %s: unexpected family %s", key, name))
				continue
			}
			var fam struct {
				Metrics []struct {
					Labels map[string]string `json:"labels"`
				} `json:"metrics"`
			}
			if err := json.Unmarshal(raw, &fam); err != nil {
				return nil, nil, fmt.Errorf("decode family %s: %w", name, err)
			}
			if len(fam.Metrics) != 1 {
				problems = append(problems, fmt.Sprintf("key %s: %s has %d series, want 1", key, name, len(fam.Metrics)))
			}
			if len(fam.Metrics) > 0 {
				st[famIndex(name[len(name)-1:])] = fam.Metrics[0].Labels["op"]
			}
		}
		if st == (State{}) {
			problems = append(problems, fmt.Sprintf("key %s: group without chaos_a or chaos_b", key))
		}
		states[key] = st
	}
	return states, problems, nil
}

// saveArtifacts writes the history, the faults, every node's log and final
// data to CHAOS_ARTIFACTS (or a new temporary directory) for a post mortem.
func saveArtifacts(t *testing.T, c *cluster, ops []Op, faults []faultRecord, views []nodeView, summary string, problems []string) {
	dir := os.Getenv("CHAOS_ARTIFACTS")
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "pgc-chaos-artifacts-")
	} else {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Logf("artifacts: %v", err)
		return
	}
	sorted := append([]Op(nil), ops...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	var hist bytes.Buffer
	enc := json.NewEncoder(&hist)
	for _, o := range sorted {
		_ = enc.Encode(o)
	}
	files := map[string][]byte{
		"history.jsonl": hist.Bytes(),
		"summary.txt":   []byte(summary + "\n" + strings.Join(problems, "\n") + "\n"),
	}
	fb, _ := json.MarshalIndent(faults, "", "  ")
	files["faults.json"] = fb
	for i, n := range c.nodes {
		files[n.name+".log"] = []byte(n.log.String())
		if i < len(views) {
			files[n.name+"-api-v1-metrics.json"] = views[i].api
			files[n.name+"-pushed.txt"] = []byte(views[i].pushed)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Logf("artifacts: %v", err)
		}
	}
	t.Logf("artifacts (history, faults, node logs, final data) in %s", dir)
}

func dumpLogs(t *testing.T, c *cluster) {
	for _, n := range c.nodes {
		t.Logf("--- last lines of %s ---\n%s", n.name, tail(n.log, 60))
	}
}
