//go:build linux

package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// Ports every node uses inside its own namespace.
const (
	labWebPort    = 9091
	labGossipPort = 9094
	labRaftPort   = 9095
	// The scrape interval of the end-to-end test. Raft's default timers
	// (1 s heartbeat timeout) make an election after the leader is cut off
	// take 1–3 s, during which no node can serve a current read: one scrape
	// of 3 s may fail, not two.
	labScrapeInterval = 3 * time.Second
)

// labNode is one pushgateway-cluster process in a namespace of a netLab.
type labNode struct {
	t    *testing.T
	lab  *netLab
	host int
	dir  string
	proc *procs.Process
	out  *testutil.LockedBuffer
}

func (n *labNode) name() string { return fmt.Sprintf("n%d", n.host) }
func (n *labNode) url() string  { return fmt.Sprintf("http://%s:%d", n.lab.addr(n.host), labWebPort) }

func (n *labNode) start() {
	n.t.Helper()
	ip := n.lab.addr(n.host)
	args := []string{
		fmt.Sprintf("--web.listen-address=%s:%d", ip, labWebPort),
		fmt.Sprintf("--raft.listen-address=%s:%d", ip, labRaftPort),
		fmt.Sprintf("--cluster.listen-address=%s:%d", ip, labGossipPort),
		"--storage.path=" + n.dir, "--cluster.node-name=" + n.name(),
		"--cluster.bootstrap-expect=3", "--cluster.write-timeout=3s",
	}
	for i := 1; i <= n.lab.hosts; i++ {
		args = append(args, fmt.Sprintf("--cluster.peer=%s:%d", n.lab.addr(i), labGossipPort))
	}
	n.out = &testutil.LockedBuffer{}
	p, err := procs.Start(n.name(), n.lab.argv(n.host, ourBinary, args...), procs.Options{Out: n.out})
	if err != nil {
		n.t.Fatal(err)
	}
	n.proc = p
}

// signal sends sig to the running node; nothing when it is gone.
func (n *labNode) signal(sig syscall.Signal) {
	if n.proc != nil {
		_ = n.proc.Signal(sig)
	}
}

func (n *labNode) kill() {
	if n.proc != nil {
		_ = n.proc.Kill()
	}
}

// helper starts a program in the hub namespace and stops it at the end.
func startInHub(t *testing.T, lab *netLab, name string, args ...string) *testutil.LockedBuffer {
	t.Helper()
	out := &testutil.LockedBuffer{}
	p, err := procs.Start(name, lab.argv(0, name, args...), procs.Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, out)
		}
	})
	return out
}

// haproxyConfig is the shipped deploy/haproxy/haproxy.cfg with this lab's
// addresses and with timeouts scaled to the test's scrape interval.
func haproxyConfig(t *testing.T, lab *netLab, bind string) string {
	t.Helper()
	b, err := os.ReadFile("../deploy/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	servers := false
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "log stdout"):
			line = "    log stdout format timed local0 info" // every request, for the failure output
		case strings.HasPrefix(trimmed, "bind "):
			line = "    bind " + bind
		case strings.HasPrefix(trimmed, "timeout server "):
			line = "    timeout server 1200ms" // above the read timeout, below the scrape timeout
		case strings.HasPrefix(trimmed, "default_backend "):
			// The raft index each answer was served at, in the log.
			line += "\n    capture response header X-Pushgateway-Raft-Index len 20"
		case strings.HasPrefix(trimmed, "server "):
			if servers {
				continue
			}
			servers = true
			var lines []string
			for i := 1; i <= lab.hosts; i++ {
				lines = append(lines, fmt.Sprintf("    server n%d %s:%d", i, lab.addr(i), labWebPort))
			}
			line = strings.Join(lines, "\n")
		}
		out = append(out, line)
	}
	if !servers {
		t.Fatal("no server lines in deploy/haproxy/haproxy.cfg")
	}
	return strings.Join(out, "\n")
}

// pushAttempt is one push of the end-to-end test's job.
type pushAttempt struct {
	sent    time.Time
	took    time.Duration
	node    string
	value   int64
	outcome string // ok, error or the status code
	index   string // the raft index of the answer, when there was one
}

// promSample is one stored sample.
type promSample struct {
	at    float64
	value float64
}

// promSamples returns the stored samples of the series matching selector
// over the last rng, from Prometheus' query API.
func promSamples(t *testing.T, c *http.Client, prom, selector string, rng time.Duration) []promSample {
	t.Helper()
	q := url.Values{"query": {fmt.Sprintf("%s[%ds]", selector, int(rng.Seconds()))}}
	resp, err := c.Get(prom + "/api/v1/query?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Values [][2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Status != "success" {
		t.Fatalf("query %s: %v %s", selector, err, env.Status)
	}
	if len(env.Data.Result) > 1 {
		t.Fatalf("query %s: %d series, want one: %v", selector, len(env.Data.Result), env.Data.Result)
	}
	var out []promSample
	for _, r := range env.Data.Result {
		for _, v := range r.Values {
			f, _ := strconv.ParseFloat(v[1].(string), 64)
			out = append(out, promSample{at: v[0].(float64), value: f})
		}
	}
	return out
}

// promCounter sums the values of a Prometheus self-metric.
func promCounter(t *testing.T, c *http.Client, prom, name string) float64 {
	t.Helper()
	resp, err := c.Get(prom + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, m := range regexp.MustCompile(`(?m)^`+name+`(?:\{[^}]*\})? (\S+)$`).FindAllStringSubmatch(string(b), -1) {
		f, _ := strconv.ParseFloat(m[1], 64)
		sum += f
	}
	return sum
}

// TestPrometheusScrapesThroughFailures runs three nodes, each in its own
// network namespace, Debian's HAProxy and Prometheus in a fourth, and a job
// pushing an ever-increasing counter throughout. Prometheus scrapes the
// cluster through HAProxy (layout a) and every node as a target with
// honor_labels (layout b). The test cuts a follower off for 10 s, then the
// leader, SIGSTOPs a node for 10 s, and kills one with -9 and restarts it.
// From Prometheus' stored samples: in layout (a) no value ever goes back
// (unless a push whose client gave up was applied late: a later raft index
// serves the lower value, and the test logs it), no gap exceeds two scrape
// intervals, and the last sample is the last acknowledged push; layout (b)'s
// figures are logged (README, "Scraping").
func TestPrometheusScrapesThroughFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with Prometheus and HAProxy")
	}
	requireNetLab(t)
	for _, tool := range []string{"prometheus", "haproxy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make test-deps)", tool)
		}
	}
	lab := newNetLab(t, 3)
	nodes := make([]*labNode, 3)
	for i := range nodes {
		nodes[i] = &labNode{t: t, lab: lab, host: i + 1, dir: t.TempDir()}
		nodes[i].start()
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.kill()
			if t.Failed() {
				t.Logf("--- output of %s ---\n%s", n.name(), n.out)
			}
		}
	})
	c := lab.client(3 * time.Second)
	get := func(u string) (int, string) {
		resp, err := c.Get(u)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	leaderOf := func(n *labNode) string {
		code, body := get(n.url() + "/api/v1/cluster")
		var env struct{ Data struct{ Leader string } }
		if code != 200 || json.Unmarshal([]byte(body), &env) != nil {
			return ""
		}
		return env.Data.Leader
	}
	allReady := func() bool {
		leader := ""
		for _, n := range nodes {
			if code, _ := get(n.url() + "/-/ready"); code != 200 {
				return false
			}
			l := leaderOf(n)
			if l == "" || (leader != "" && l != leader) {
				return false
			}
			leader = l
		}
		return true
	}
	eventually(t, "three nodes ready with one leader", 60*time.Second, allReady)

	dir := t.TempDir()
	haproxyAddr := "127.0.0.1:9190"
	if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(haproxyConfig(t, lab, haproxyAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	startInHub(t, lab, "haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
	var targets []string
	for i := 1; i <= 3; i++ {
		targets = append(targets, fmt.Sprintf("%q", fmt.Sprintf("%s:%d", lab.addr(i), labWebPort)))
	}
	promConfig := fmt.Sprintf(`global:
  scrape_interval: %[1]dms
  scrape_timeout: %[2]dms
scrape_configs:
  - job_name: via-haproxy
    honor_labels: true
    static_configs: [{targets: [%[3]q]}]
    metric_relabel_configs: [{target_label: layout, replacement: a}]
  - job_name: every-node
    honor_labels: true
    static_configs: [{targets: [%[4]s]}]
    metric_relabel_configs: [{target_label: layout, replacement: b}]
`, labScrapeInterval.Milliseconds(), (labScrapeInterval - 500*time.Millisecond).Milliseconds(), haproxyAddr, strings.Join(targets, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(promConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := "http://127.0.0.1:9090"
	startInHub(t, lab, "prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address=127.0.0.1:9090")
	eventually(t, "Prometheus ready", 60*time.Second, func() bool {
		code, _ := get(prom + "/-/ready")
		return code == 200
	})

	// The job: pushes 1, 2, 3, … every 100 ms, to the nodes in turn; a
	// value is acknowledged once a node answered 200, and the next value
	// is pushed only then (a failed push is retried on the next node).
	var acked atomic.Int64
	var pushMu sync.Mutex
	pushErrors := map[string]int{}
	var attempts []pushAttempt // every push, for the failure output
	stopPushing := make(chan struct{})
	pusherDone := make(chan struct{})
	go func() {
		defer close(pusherDone)
		pc := lab.client(2 * time.Second)
		value, turn := int64(1), 0
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopPushing:
				return
			case <-tick.C:
			}
			n := nodes[turn%len(nodes)]
			turn++
			body := fmt.Sprintf("# TYPE e2e_pushed_total counter\ne2e_pushed_total %d\n", value)
			req, _ := http.NewRequest("PUT", n.url()+"/metrics/job/e2e", strings.NewReader(body))
			sent := time.Now()
			resp, err := pc.Do(req)
			outcome, index := "ok", ""
			switch {
			case err != nil:
				outcome = "error"
			case resp.StatusCode != 200:
				outcome = strconv.Itoa(resp.StatusCode)
			}
			if resp != nil {
				index = resp.Header.Get("X-Pushgateway-Raft-Index")
				resp.Body.Close()
			}
			pushMu.Lock()
			attempts = append(attempts, pushAttempt{sent: sent, took: time.Since(sent), node: n.name(), value: value, outcome: outcome, index: index})
			if outcome != "ok" {
				pushErrors[n.name()+" "+outcome]++
			}
			pushMu.Unlock()
			if outcome != "ok" {
				continue
			}
			acked.Store(value)
			value++
		}
	}()
	stopPusher := func() {
		select {
		case <-stopPushing:
		default:
			close(stopPushing)
		}
		<-pusherDone
	}
	t.Cleanup(stopPusher)

	settle := func(what string) {
		t.Helper()
		eventually(t, "the cluster healthy again after "+what, 60*time.Second, allReady)
		time.Sleep(3 * labScrapeInterval) // a few scrapes of the healthy cluster between faults
	}
	byName := func(name string) *labNode {
		for _, n := range nodes {
			if n.name() == name {
				return n
			}
		}
		t.Fatalf("no node %q", name)
		return nil
	}
	leader := func() *labNode {
		var l string
		eventually(t, "one leader", 30*time.Second, func() bool { l = leaderOf(nodes[0]); return l != "" })
		return byName(l)
	}
	follower := func() *labNode {
		l := leader()
		for _, n := range nodes {
			if n != l {
				return n
			}
		}
		return nil
	}
	eventually(t, "Prometheus storing the counter through HAProxy", 30*time.Second, func() bool {
		return len(promSamples(t, c, prom, `e2e_pushed_total{layout="a"}`, time.Minute)) >= 3
	})
	start := time.Now()

	faults := []struct {
		name string
		do   func() (hit *labNode, undo func())
	}{
		{"a follower cut off for 10 s", func() (*labNode, func()) {
			n := follower()
			lab.cutOff(n.host, labRaftPort, labGossipPort)
			return n, func() { lab.heal(n.host, labRaftPort, labGossipPort) }
		}},
		{"the leader cut off for 10 s", func() (*labNode, func()) {
			n := leader()
			lab.cutOff(n.host, labRaftPort, labGossipPort)
			return n, func() { lab.heal(n.host, labRaftPort, labGossipPort) }
		}},
		{"a node SIGSTOPped for 10 s", func() (*labNode, func()) {
			n := follower()
			n.signal(syscall.SIGSTOP)
			return n, func() { n.signal(syscall.SIGCONT) }
		}},
		{"a node killed -9 and restarted", func() (*labNode, func()) {
			n := leader()
			n.kill()
			return n, func() { n.start() }
		}},
	}
	for _, f := range faults {
		hit, undo := f.do()
		began := time.Since(start)
		healed := false
		heal := func() {
			if !healed {
				healed = true
				undo()
			}
		}
		t.Cleanup(heal) // undone even when the test fails on the way
		time.Sleep(10 * time.Second)
		heal()
		undone := time.Since(start)
		settle(f.name)
		t.Logf("%s: %s from +%v to +%v, healthy again and done at +%v, last acknowledged push %d", f.name, hit.name(),
			began.Round(time.Millisecond), undone.Round(time.Millisecond), time.Since(start).Round(time.Second), acked.Load())
	}
	stopPusher()
	last := acked.Load()
	eventually(t, "Prometheus storing the last acknowledged push through HAProxy", 30*time.Second, func() bool {
		s := promSamples(t, c, prom, `e2e_pushed_total{layout="a"}`, time.Minute)
		return len(s) > 0 && s[len(s)-1].value == float64(last)
	})
	window := time.Since(start) + time.Minute

	// Layout (a): one address in front of every node.
	a := promSamples(t, c, prom, `e2e_pushed_total{layout="a"}`, window)
	maxGap := 0.0
	since := func(at float64) time.Duration {
		return time.Unix(0, int64(at*1e9)).Sub(start).Round(time.Millisecond)
	}
	// The raft index each of those scrapes was served at: the node's own
	// applied index, in the same answer.
	served := map[float64]float64{}
	for _, smp := range promSamples(t, c, prom, `pushgateway_cluster_raft_index{kind="applied",layout="a"}`, window) {
		served[smp.at] = smp.value
	}
	pushMu.Lock()
	indeterminate := map[float64]bool{} // values of pushes whose outcome the job never learned
	for _, p := range attempts {
		if p.outcome == "error" || p.outcome == "504" {
			indeterminate[float64(p.value)] = true
		}
	}
	pushMu.Unlock()
	backA, lateA := 0, 0
	for i := 1; i < len(a); i++ {
		if a[i].value < a[i-1].value {
			// A push whose client gave up may still be applied later (a
			// node resumed from SIGSTOP handles the pushes that waited in
			// its sockets), as with upstream: then the value goes back in
			// the log itself, at a later index, and a read shows it.
			prev, ok1 := served[a[i-1].at]
			cur, ok2 := served[a[i].at]
			if ok1 && ok2 && cur > prev && indeterminate[a[i].value] {
				lateA++
				t.Logf("layout (a): value went back from %v (at +%v, index %v) to %v (at +%v, index %v): a push of %v whose client gave up, applied late",
					a[i-1].value, since(a[i-1].at), prev, a[i].value, since(a[i].at), cur, a[i].value)
			} else {
				backA++
				t.Errorf("layout (a): value went back from %v (at +%v, index %v) to %v (at +%v, index %v)", a[i-1].value, since(a[i-1].at), prev, a[i].value, since(a[i].at), cur)
			}
			pushMu.Lock()
			for _, p := range attempts {
				if d := p.sent.Sub(start); d > since(a[i-1].at)-15*time.Second && d < since(a[i].at)+5*time.Second {
					t.Logf("push %d to %s at +%v: %s after %v (index %s)", p.value, p.node, d.Round(time.Millisecond), p.outcome, p.took.Round(time.Millisecond), p.index)
				}
			}
			pushMu.Unlock()
		}
		gap := a[i].at - a[i-1].at
		maxGap = max(maxGap, gap)
		if limit := 2*labScrapeInterval.Seconds() + 0.1; gap > limit {
			t.Errorf("layout (a): a gap of %.3f s between samples at +%v and +%v, more than two scrape intervals", gap, since(a[i-1].at), since(a[i].at))
		}
	}
	if got := a[len(a)-1].value; got != float64(last) {
		t.Errorf("layout (a): last sample %v, last acknowledged push %d", got, last)
	}

	// Layout (b): every node a target with honor_labels: the three
	// targets write into one series.
	b := promSamples(t, c, prom, `e2e_pushed_total{layout="b"}`, window)
	back := 0
	for i := 1; i < len(b); i++ {
		if b[i].value < b[i-1].value {
			back++
		}
	}
	pushMu.Lock()
	errs := make([]string, 0, len(pushErrors))
	for k, v := range pushErrors {
		errs = append(errs, fmt.Sprintf("%s: %d", k, v))
	}
	pushMu.Unlock()
	sort.Strings(errs)
	t.Logf("over %v, %d pushes acknowledged; failed pushes by node and answer: %s", window-time.Minute, last, strings.Join(errs, ", "))
	t.Logf("layout (a), through HAProxy: %d samples, %d going back (and %d showing a late push), largest gap %.1f s (scrape interval %v)", len(a), backA, lateA, maxGap, labScrapeInterval)
	t.Logf("layout (b), 3 targets with honor_labels into one series: %d samples stored (%d scrapes per target), %d going back (a scrape that started earlier read later); Prometheus dropped %v out-of-order and %v duplicate-timestamp samples",
		len(b), len(a), back,
		promCounter(t, c, prom, "prometheus_target_scrapes_sample_out_of_order_total"),
		promCounter(t, c, prom, "prometheus_target_scrapes_sample_duplicate_timestamp_total"))
}
