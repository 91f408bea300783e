package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// member is one pushgateway-cluster process of a multi-process cluster on
// loopback. Its ports and storage survive restarts.
type member struct {
	t                     *testing.T
	name, dir             string
	web, raftAddr, gossip string
	extra                 []string // more flags
	bin                   string   // the binary; "" is this build's
	proc                  *procs.Process
	out                   *testutil.LockedBuffer
}

func newMember(t *testing.T, name string) *member {
	port := func() string { return testutil.FreeAddr(t) }
	return &member{t: t, name: name, dir: t.TempDir(), web: port(), raftAddr: port(), gossip: port()}
}

func (m *member) url() string { return "http://" + m.web }

// start launches the process; expect is --cluster.bootstrap-expect.
func (m *member) start(expect int, peers ...*member) {
	m.t.Helper()
	args := []string{
		"--web.listen-address=" + m.web, "--storage.path=" + m.dir,
		"--raft.listen-address=" + m.raftAddr, "--cluster.listen-address=" + m.gossip,
		"--cluster.node-name=" + m.name, "--cluster.bootstrap-expect=" + strconv.Itoa(expect),
		"--cluster.write-timeout=5s", "--web.enable-admin-api",
	}
	for _, p := range peers {
		args = append(args, "--cluster.peer="+p.gossip)
	}
	m.launch(append(args, m.extra...))
}

// launch starts the binary with args, its output in m.out, without waiting
// for it; the process is killed at the end of the test.
func (m *member) launch(args []string) {
	m.t.Helper()
	m.out = &testutil.LockedBuffer{}
	bin := ourBinary
	if m.bin != "" {
		bin = m.bin
	}
	p, err := procs.Start(m.name, append([]string{bin}, args...), procs.Options{Out: m.out})
	if err != nil {
		m.t.Fatal(err)
	}
	m.proc = p
	out := m.out
	m.t.Cleanup(func() {
		_ = p.Kill()
		if m.t.Failed() {
			m.t.Logf("--- output of %s ---\n%s", m.name, out)
		}
	})
}

func (m *member) running() bool { return m.proc != nil && m.proc.Running() }

// kill sends SIGKILL (kill -9) and waits for the process to go.
func (m *member) kill() {
	if m.proc != nil {
		_ = m.proc.Kill()
	}
}

// stop sends SIGTERM and waits for a graceful exit.
func (m *member) stop() {
	m.t.Helper()
	if m.proc == nil {
		return
	}
	if err := m.proc.Stop(30 * time.Second); err != nil {
		m.t.Fatalf("%s did not stop after SIGTERM: %v", m.name, err)
	}
}

func httpDo(method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	client := &http.Client{Timeout: 15 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (m *member) get(path string) string {
	m.t.Helper()
	code, body, err := httpDo("GET", m.url()+path, "")
	if err != nil || code != 200 {
		m.t.Fatalf("GET %s on %s: %d %v %s", path, m.name, code, err, body)
	}
	return body
}

func (m *member) push(path, body string) {
	m.t.Helper()
	code, resp, err := httpDo("PUT", m.url()+path, body)
	if err != nil || code != 200 {
		m.t.Fatalf("PUT %s via %s: %d %v %s", path, m.name, code, err, resp)
	}
}

// clusterView is the part of /api/v1/cluster the tests look at.
type clusterView struct {
	Self    string `json:"self"`
	Leader  string `json:"leader"`
	Members []struct {
		Name          string `json:"name"`
		Status        string `json:"status"`
		Suffrage      string `json:"suffrage"`
		GossipAddress string `json:"gossip_address"`
		RaftAddress   string `json:"raft_address"`
	} `json:"members"`
}

func (m *member) cluster() (clusterView, bool) {
	code, body, err := httpDo("GET", m.url()+"/api/v1/cluster", "")
	if err != nil || code != 200 {
		return clusterView{}, false
	}
	var env struct {
		Data clusterView `json:"data"`
	}
	if json.Unmarshal([]byte(body), &env) != nil {
		return clusterView{}, false
	}
	return env.Data, true
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(start)
}

// waitReady waits until every member is ready and they agree on a leader.
func waitReady(t *testing.T, ms ...*member) string {
	t.Helper()
	var leader string
	eventually(t, "members ready with one leader", 30*time.Second, func() bool {
		leader = ""
		for _, m := range ms {
			code, _, err := httpDo("GET", m.url()+"/-/ready", "")
			if err != nil || code != 200 {
				return false
			}
			v, ok := m.cluster()
			if !ok || v.Leader == "" || (leader != "" && v.Leader != leader) {
				return false
			}
			leader = v.Leader
		}
		return true
	})
	return leader
}

// startThree starts node1, node2 and node3 with bootstrap-expect 3 and
// waits until they are ready with one leader, which it returns.
func startThree(t *testing.T) ([]*member, string) {
	t.Helper()
	nodes := []*member{newMember(t, "node1"), newMember(t, "node2"), newMember(t, "node3")}
	for _, m := range nodes {
		m.start(3, nodes...)
	}
	return nodes, waitReady(t, nodes...)
}

// assertSameState waits until all members serve byte-identical
// /api/v1/metrics and returns it.
func assertSameState(t *testing.T, ms ...*member) string {
	t.Helper()
	var want string
	eventually(t, "identical /api/v1/metrics on every member", 15*time.Second, func() bool {
		want = ms[0].get("/api/v1/metrics")
		for _, m := range ms[1:] {
			if m.get("/api/v1/metrics") != want {
				return false
			}
		}
		return true
	})
	return want
}

func byName(ms []*member, name string) *member {
	for _, m := range ms {
		if m.name == name {
			return m
		}
	}
	return nil
}

// TestClusterOfProcesses runs three real processes on loopback through
// failover, catch-up, a full restart, growth and removal.
func TestClusterOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	nodes, _ := startThree(t)

	// Writes through every node; read-your-writes on the accepting node.
	for i, m := range nodes {
		m.push("/metrics/job/batch/instance/"+m.name, fmt.Sprintf("# TYPE batch_success gauge\nbatch_success %d\n", i+1))
		if !strings.Contains(m.get("/metrics"), fmt.Sprintf(`batch_success{instance=%q,job="batch"} %d`, m.name, i+1)) {
			t.Fatalf("%s does not show its own write", m.name)
		}
	}
	assertSameState(t, nodes...)

	// kill -9 the leader: the survivors take writes again within 10 s.
	leader := byName(nodes, waitReady(t, nodes...))
	leader.kill()
	var survivors []*member
	for _, m := range nodes {
		if m != leader {
			survivors = append(survivors, m)
		}
	}
	took := eventually(t, "a write on a survivor after killing the leader", 10*time.Second, func() bool {
		code, _, err := httpDo("PUT", survivors[0].url()+"/metrics/job/failover", "after_failover 1\n")
		return err == nil && code == 200
	})
	t.Logf("writes accepted again %v after kill -9 of leader %s", took.Round(time.Millisecond), leader.name)
	survivors[1].push("/metrics/job/failover2", "after_failover 2\n")

	// The killed node comes back and catches up.
	leader.start(3, nodes...)
	waitReady(t, nodes...)
	before := assertSameState(t, nodes...)
	if !strings.Contains(before, `"failover2"`) {
		t.Fatal("restarted node did not catch up")
	}

	// Stop all three, start them again: nothing acknowledged is lost.
	for _, m := range nodes {
		m.stop()
	}
	for _, m := range nodes {
		m.start(3, nodes...)
	}
	waitReady(t, nodes...)
	if after := assertSameState(t, nodes...); after != before {
		t.Fatalf("state changed across a full restart:\n%s\nvs\n%s", after, before)
	}

	// A fourth node joins through one peer and becomes a voter.
	node4 := newMember(t, "node4")
	node4.start(1, nodes[0])
	all := append(append([]*member{}, nodes...), node4)
	waitReady(t, all...)
	eventually(t, "node4 a voter", 20*time.Second, func() bool {
		v, ok := nodes[0].cluster()
		if !ok {
			return false
		}
		for _, m := range v.Members {
			if m.Name == "node4" {
				return m.Suffrage == "voter" && m.Status == "alive"
			}
		}
		return false
	})
	assertSameState(t, all...)
	node4.push("/metrics/job/from4", "from4 1\n")

	// Remove node3 for good through the admin API of another node.
	code, body, err := httpDo("DELETE", node4.url()+"/api/v1/admin/cluster/members/node3", "")
	if err != nil || code != 202 {
		t.Fatalf("remove node3: %d %v %s", code, err, body)
	}
	nodes[2].stop()
	rest := []*member{nodes[0], nodes[1], node4}
	waitReady(t, rest...)
	eventually(t, "three voters without node3", 10*time.Second, func() bool {
		v, ok := node4.cluster()
		if !ok {
			return false
		}
		voters := 0
		for _, m := range v.Members {
			if m.Suffrage == "voter" {
				voters++
				if m.Name == "node3" {
					return false
				}
			}
		}
		return voters == 3
	})
	nodes[1].push("/metrics/job/after-removal", "after_removal 1\n")
	if final := assertSameState(t, rest...); !strings.Contains(final, `"after-removal"`) {
		t.Fatal("the write after the removal is missing")
	}

	// A minority (1 of 3) refuses writes and reads with 503.
	nodes[0].kill()
	node4.kill()
	lone := nodes[1]
	// Wait until the survivor noticed it is alone (a leader that still
	// believed in its lease would append the write and answer 504).
	eventually(t, "lone node not ready", 15*time.Second, func() bool {
		code, _, _ := httpDo("GET", lone.url()+"/-/ready", "")
		return code == 503
	})
	start := time.Now()
	code, body, err = httpDo("PUT", lone.url()+"/metrics/job/minority", "m 1\n")
	if err != nil || code != 503 {
		t.Fatalf("minority write: %d %v %s", code, err, body)
	}
	t.Logf("minority write refused after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(body))
	// A minority cannot tell whether its state is current: it refuses
	// reads of the pushed metrics rather than serving old values.
	if code, body, _ := httpDo("GET", lone.url()+"/api/v1/metrics", ""); code != 503 || !strings.Contains(body, "cannot serve a current read") {
		t.Fatalf("minority read: %d %s", code, body)
	}
}
