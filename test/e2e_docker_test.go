package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// e2eProject is the compose project the end-to-end test runs as; its
// published API ports stay clear of a developer's own `docker compose up`.
const e2eProject = "pgce2e"

var e2ePorts = []int{19291, 19292, 19293}

// compose runs docker compose (v2 plugin) or docker-compose (v1) in the
// repository root as one project, with its compose files and environment.
type compose struct {
	t    *testing.T
	base []string
	env  []string
}

// newCompose prepares project on the given compose files, publishing the
// nodes' API ports on ports (PGC_NODEn_PORT); env adds variables.
func newCompose(t *testing.T, project string, files []string, ports []int, env ...string) *compose {
	c := &compose{t: t, env: env}
	if exec.Command("docker", "compose", "version").Run() == nil {
		c.base = []string{"docker", "compose"}
	} else if _, err := exec.LookPath("docker-compose"); err == nil {
		c.base = []string{"docker-compose"}
	} else {
		t.Fatal("Docker is reachable but neither `docker compose` nor docker-compose is installed")
	}
	c.base = append(c.base, "-p", project)
	for _, f := range files {
		c.base = append(c.base, "-f", f)
	}
	for i, p := range ports {
		c.env = append(c.env, fmt.Sprintf("PGC_NODE%d_PORT=%d", i+1, p))
	}
	return c
}

// downNowAndAtEnd removes what an interrupted earlier run left of the
// project, and takes the project down when the test ends (with the
// containers' logs when it failed).
func (c *compose) downNowAndAtEnd() {
	_, _ = c.try("down", "-v", "--remove-orphans")
	c.t.Cleanup(func() {
		if c.t.Failed() {
			out, _ := c.try("logs", "--no-color", "--tail=60")
			c.t.Logf("compose logs:\n%s", out)
		}
		if out, err := c.try("down", "-v", "--remove-orphans"); err != nil {
			c.t.Errorf("compose down: %v\n%s", err, out)
		}
	})
}

func (c *compose) run(args ...string) string {
	c.t.Helper()
	out, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", strings.Join(c.base, " "), strings.Join(args, " "), err, out)
	}
	return out
}

func (c *compose) try(args ...string) (string, error) {
	all := append(append([]string{}, c.base...), args...)
	cmd := exec.Command(all[0], all[1:]...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// requireDockerImage skips the test without a reachable Docker engine (or
// under -short) and builds the image with make docker.
func requireDockerImage(t *testing.T, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end Docker test")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no Docker engine reachable, skipping the %s: %v %s", what, err, bytes.TrimSpace(out))
	}
	build := exec.Command("make", "docker")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make docker: %v\n%s", err, out)
	}
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// e2eNode is one compose service seen through its published port.
type e2eNode struct {
	service string
	url     string
}

func (n e2eNode) ready() bool {
	code, _, err := httpDo("GET", n.url+"/-/ready", "")
	return err == nil && code == 200
}

func (n e2eNode) put(t *testing.T, path, body string) int {
	t.Helper()
	code, resp, err := httpDo("PUT", n.url+path, body)
	if err != nil {
		t.Fatalf("PUT %s via %s: %v", path, n.service, err)
	}
	if code != 200 && code != 503 {
		t.Fatalf("PUT %s via %s: %d %s", path, n.service, code, resp)
	}
	return code
}

func (n e2eNode) state(t *testing.T) string {
	t.Helper()
	code, body, err := httpDo("GET", n.url+"/api/v1/metrics", "")
	if err != nil || code != 200 {
		t.Fatalf("GET /api/v1/metrics on %s: %d %v", n.service, code, err)
	}
	return body
}

func sameState(t *testing.T, nodes ...e2eNode) string {
	t.Helper()
	var want string
	eventually(t, "identical state on "+fmt.Sprint(len(nodes))+" nodes", 30*time.Second, func() bool {
		want = nodes[0].state(t)
		for _, n := range nodes[1:] {
			if n.state(t) != want {
				return false
			}
		}
		return true
	})
	return want
}

// TestE2EComposeCluster runs the shipped docker-compose.yml: three
// containers of the FROM scratch image, faults injected with docker, and a
// real Prometheus scraping them.
func TestE2EComposeCluster(t *testing.T) {
	requireDockerImage(t, "compose end-to-end test")
	c := newCompose(t, e2eProject, []string{"docker-compose.yml"}, e2ePorts)
	c.downNowAndAtEnd()
	c.run("up", "-d")

	var nodes []e2eNode
	for i, p := range e2ePorts {
		nodes = append(nodes, e2eNode{service: fmt.Sprintf("node%d", i+1), url: "http://127.0.0.1:" + strconv.Itoa(p)})
	}
	allReady := func(ns ...e2eNode) func() bool {
		return func() bool {
			for _, n := range ns {
				if !n.ready() {
					return false
				}
			}
			return true
		}
	}
	took := eventually(t, "three containers ready", 90*time.Second, allReady(nodes...))
	t.Logf("compose cluster ready after %v", took.Round(time.Millisecond))

	for i, n := range nodes {
		if code := n.put(t, "/metrics/job/e2e/instance/"+n.service, fmt.Sprintf("# TYPE e2e_batch_success gauge\ne2e_batch_success %d\n", i+1)); code != 200 {
			t.Fatalf("push via %s: %d", n.service, code)
		}
	}
	sameState(t, nodes...)

	// The batch jobs of the README, each through another container.
	jobRun(t, 0, []string{"PUSHGATEWAY_URL=" + nodes[0].url, "SIMULATE_FAILURE="}, "bash", "examples/backup.sh")
	jobRun(t, 0, nil, "go", "run", "./examples/gojob", "-url", nodes[2].url)
	wantJobs := []string{`backup_success{instance=`, `gojob_records_processed{instance=`}
	if exec.Command(jobPython, "-c", "import prometheus_client").Run() == nil {
		jobRun(t, 0, nil, jobPython, "examples/push_job.py", "client", nodes[1].url)
		wantJobs = append(wantJobs, `pyjob_records_processed{instance=`)
	} else if os.Getenv("CI") != "" {
		t.Fatal("python3-prometheus-client missing under CI")
	}
	sameState(t, nodes...)
	for _, n := range nodes {
		_, body, err := httpDo("GET", n.url+"/metrics", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wantJobs {
			if !strings.Contains(body, w) {
				t.Fatalf("%s lacks %s", n.service, w)
			}
		}
	}

	scrapeWithPrometheus(t)

	// Stop one container: the other two keep taking writes.
	c.run("stop", "node3")
	for _, n := range nodes[:2] {
		if code := n.put(t, "/metrics/job/e2e-stopped/instance/"+n.service, "e2e_while_stopped 1\n"); code != 200 {
			t.Fatalf("write via %s with node3 stopped: %d", n.service, code)
		}
	}
	c.run("start", "node3")
	eventually(t, "node3 back", 60*time.Second, allReady(nodes...))
	sameState(t, nodes...)

	// Cut node3 off the cluster network: it refuses writes with 503 while
	// the other two keep working; reconnected, it converges.
	id := strings.TrimSpace(c.run("ps", "-q", "node3"))
	network := e2eProject + "_cluster"
	ip := docker(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").IPAddress}}", id)
	docker(t, "network", "disconnect", network, id)
	eventually(t, "node3 notices the partition", 30*time.Second, func() bool { return !nodes[2].ready() })
	start := time.Now()
	if code := nodes[2].put(t, "/metrics/job/e2e-partitioned", "e2e_minority 1\n"); code != 503 {
		t.Fatalf("write to the partitioned node: %d, want 503", code)
	}
	t.Logf("partitioned node refused the write with 503 after %v", time.Since(start).Round(time.Millisecond))
	for _, n := range nodes[:2] {
		if code := n.put(t, "/metrics/job/e2e-majority/instance/"+n.service, "e2e_majority 1\n"); code != 200 {
			t.Fatalf("write via %s during the partition: %d", n.service, code)
		}
	}
	docker(t, "network", "connect", "--ip", ip, network, id)
	eventually(t, "node3 rejoins", 60*time.Second, allReady(nodes...))
	before := sameState(t, nodes...)
	if strings.Contains(before, "e2e-partitioned") {
		t.Fatal("the write refused with 503 was applied")
	}
	if !strings.Contains(before, `"e2e-majority"`) {
		t.Fatal("majority writes missing after the partition healed")
	}

	// Restart everything: nothing acknowledged is lost.
	c.run("restart")
	eventually(t, "all ready after compose restart", 90*time.Second, allReady(nodes...))
	if after := sameState(t, nodes...); after != before {
		t.Fatalf("state changed across docker compose restart:\n%s\nvs\n%s", after, before)
	}
}

// scrapeWithPrometheus runs Debian's Prometheus on the host against the
// published ports, with the shipped configuration's two-job layout, and
// checks the pushed series arrive once, with their labels and values, and
// that Prometheus saw no duplicate or out-of-order samples.
func scrapeWithPrometheus(t *testing.T) {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus not installed under CI (make test-deps installs it)")
		}
		t.Log("prometheus not installed; skipping the scrape check (apt-get install prometheus)")
		return
	}
	dir := t.TempDir()
	// On the host the three nodes are three published ports; the job that
	// carries the pushed metrics scrapes one of them, as a load balancer or
	// Service address would.
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs: [{targets: ["127.0.0.1:%d"]}]
    metric_relabel_configs:
      - {source_labels: [job], regex: pushgateway, action: drop}
  - job_name: pushgateway-nodes
    static_configs: [{targets: ["127.0.0.1:%d", "127.0.0.1:%d", "127.0.0.1:%d"]}]
    metric_relabel_configs:
      - {source_labels: [exported_job], regex: .+, action: drop}
`, e2ePorts[0], e2ePorts[0], e2ePorts[1], e2ePorts[2])
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	out := &testutil.LockedBuffer{}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out)
		}
	}()
	query := func(q string) ([]map[string]any, bool) {
		code, body, err := httpDo("GET", "http://"+addr+"/api/v1/query?query="+url.QueryEscape(q), "")
		if err != nil || code != 200 {
			return nil, false
		}
		var r struct {
			Data struct {
				Result []map[string]any `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal([]byte(body), &r) != nil {
			return nil, false
		}
		return r.Data.Result, true
	}
	var series []map[string]any
	eventually(t, "Prometheus has the pushed series", 60*time.Second, func() bool {
		res, ok := query("e2e_batch_success")
		series = res
		return ok && len(res) == 3
	})
	for _, s := range series {
		m := s["metric"].(map[string]any)
		v := s["value"].([]any)[1].(string)
		inst, _ := m["instance"].(string)
		if m["job"] != "e2e" || !strings.HasPrefix(inst, "node") || v != strings.TrimPrefix(inst, "node") {
			t.Fatalf("unexpected pushed series in Prometheus: %v = %s", m, v)
		}
	}
	// Every node's own metrics arrive too, once per node.
	eventually(t, "node self-metrics scraped", 30*time.Second, func() bool {
		res, ok := query(`pushgateway_cluster_is_leader{job="pushgateway-nodes"}`)
		return ok && len(res) == 3
	})
	// Let a few more scrapes happen, then check Prometheus' own counters.
	eventually(t, "a few scrape rounds", 30*time.Second, func() bool {
		res, ok := query(`count_over_time(up{job="pushgateway"}[5m])`)
		if !ok || len(res) == 0 {
			return false
		}
		n, _ := strconv.ParseFloat(res[0]["value"].([]any)[1].(string), 64)
		return n >= 5
	})
	code, self, err := httpDo("GET", "http://"+addr+"/metrics", "")
	if err != nil || code != 200 {
		t.Fatalf("Prometheus' own /metrics: %d %v", code, err)
	}
	for _, name := range []string{
		"prometheus_target_scrapes_sample_duplicate_timestamp_total",
		"prometheus_target_scrapes_sample_out_of_order_total",
		"prometheus_target_scrapes_sample_out_of_bounds_total",
	} {
		found := false
		for _, line := range strings.Split(self, "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				found = true
				if v != "0" {
					t.Fatalf("Prometheus reports %s", line)
				}
			}
		}
		if !found {
			t.Fatalf("Prometheus does not expose %s", name)
		}
	}
}
