package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// testNode is one in-process member on loopback.
type testNode struct {
	*Node
	state *fsm.FSM
	dir   string
	logs  *testutil.LockedBuffer
}

type testCluster struct {
	t     *testing.T
	nodes []*testNode
}

func nodeConfig(dir, name string, expect int, peers []string) Config {
	return Config{
		DataDir: dir, NodeName: name, RaftListen: "127.0.0.1:0", GossipListen: "127.0.0.1:0",
		Peers: peers, BootstrapExpect: expect, WriteTimeout: 3 * time.Second,
		State: fsm.New(nil), LocalNetwork: true,
	}
}

func (c *testCluster) start(cfg Config) *testNode {
	c.t.Helper()
	cfg, logs := withTestLogger(cfg)
	n, err := Start(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.adopt(n, cfg, logs)
}

// withTestLogger gives cfg a debug logger into a buffer, unless it has a
// logger already (then the buffer is nil).
func withTestLogger(cfg Config) (Config, *testutil.LockedBuffer) {
	if cfg.Logger != nil {
		return cfg, nil
	}
	logs := &testutil.LockedBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg, logs
}

// adopt wraps a started node and stops it at the end of the test.
func (c *testCluster) adopt(n *Node, cfg Config, logs *testutil.LockedBuffer) *testNode {
	c.t.Cleanup(func() { _ = n.Shutdown() })
	return &testNode{Node: n, state: cfg.State, dir: cfg.DataDir, logs: logs}
}

// currentExposition reads n's state once it has passed the read barrier:
// what a default read on n shows.
func currentExposition(t *testing.T, n *testNode) string {
	t.Helper()
	if err := n.ReadBarrier(context.Background()); err != nil {
		t.Fatalf("read barrier on %s: %v", n.name, err)
	}
	return exposition(t, n.state)
}

// restartConfig is the configuration of a stopped node started again with
// its storage on its former raft and gossip addresses, as a restarted
// process usually is. (A member coming back at new addresses is tested with
// real processes, TestKilledNodeReturnsAtNewAddresses: moving a server to a
// new address trips a data race inside hashicorp/raft, issue #681, that
// the race detector reports in these in-process tests.)
func restartConfig(n *testNode, expect int, peers []string) Config {
	cfg := nodeConfig(n.dir, n.name, expect, peers)
	cfg.RaftListen, cfg.GossipListen = n.RaftAddress(), n.GossipAddress()
	return cfg
}

// startAgain starts a stopped node with cfg; should another process have
// taken one of its former ports meanwhile, it starts on new ones.
func (c *testCluster) startAgain(old *testNode, cfg Config) *testNode {
	c.t.Helper()
	cfg, logs := withTestLogger(cfg)
	n, err := Start(cfg)
	if err != nil && strings.Contains(err.Error(), "address already in use") {
		c.t.Logf("%s: a former port is taken (%v); starting on new ports", old.name, err)
		cfg.RaftListen, cfg.GossipListen = "127.0.0.1:0", "127.0.0.1:0"
		n, err = Start(cfg)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return c.adopt(n, cfg, logs)
}

// startCluster starts size nodes at once with bootstrap-expect=size; the
// first node's gossip address is every other node's peer.
func startCluster(t *testing.T, size int) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	first := c.start(nodeConfig(t.TempDir(), "node-0", size, nil))
	c.nodes = append(c.nodes, first)
	for i := 1; i < size; i++ {
		c.nodes = append(c.nodes, c.start(nodeConfig(t.TempDir(), fmt.Sprintf("node-%d", i), size, []string{first.GossipAddress()})))
	}
	return c
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReadyAll waits until every node is ready and all agree on one leader.
func (c *testCluster) waitReadyAll(nodes ...*testNode) string {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	var leader string
	ready := func() bool {
		leader = ""
		for _, n := range nodes {
			if n.Ready() != nil {
				return false
			}
			_, id := n.raft.LeaderWithID()
			if leader != "" && string(id) != leader {
				return false
			}
			leader = string(id)
		}
		return true
	}
	deadline := time.Now().Add(45 * time.Second)
	for !ready() {
		if time.Now().After(deadline) {
			c.dump(nodes)
			c.t.Fatal("timed out waiting for all nodes ready with one leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return leader
}

// dump logs each node's readiness, view of the cluster and own log: what
// a timed-out wait needs to be understood.
func (c *testCluster) dump(nodes []*testNode) {
	c.t.Helper()
	for _, n := range nodes {
		st, _ := json.MarshalIndent(n.Status(), "", "  ")
		c.t.Logf("--- %s: ready: %v\nstatus: %s", n.name, n.Ready(), st)
		if n.logs != nil {
			c.t.Logf("--- log of %s:\n%s", n.name, n.logs.String())
		}
	}
}

func (c *testCluster) byName(name string) *testNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

// anyBut returns a node other than the one named (e.g. a follower).
func (c *testCluster) anyBut(name string) *testNode {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.name != name {
			return n
		}
	}
	c.t.Fatalf("no node other than %s", name)
	return nil
}

// others returns every node but n.
func (c *testCluster) others(n *testNode) []*testNode {
	var rest []*testNode
	for _, o := range c.nodes {
		if o != n {
			rest = append(rest, o)
		}
	}
	return rest
}

// assertIdentical checks every node renders the same pushed exposition.
func (c *testCluster) assertIdentical(nodes ...*testNode) string {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	var want string
	waitFor(c.t, "identical exposition on every node", 10*time.Second, func() bool {
		want = exposition(c.t, nodes[0].state)
		for _, n := range nodes[1:] {
			if exposition(c.t, n.state) != want {
				return false
			}
		}
		return true
	})
	return want
}

func TestThreeNodesBootstrapOneClusterEveryTime(t *testing.T) {
	runs := 20
	if testing.Short() {
		runs = 3
	}
	for run := 0; run < runs; run++ {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			c := startCluster(t, 3)
			leader := c.waitReadyAll()
			for _, n := range c.nodes {
				f := n.raft.GetConfiguration()
				if err := f.Error(); err != nil {
					t.Fatal(err)
				}
				servers := f.Configuration().Servers
				if len(servers) != 3 {
					t.Fatalf("%s sees %d servers: %v", n.name, len(servers), servers)
				}
				for _, s := range servers {
					if s.Suffrage != raft.Voter {
						t.Fatalf("%s is not a voter", s.ID)
					}
				}
			}
			if leader == "" {
				t.Fatal("no leader")
			}
		})
	}
}

func TestWritesThroughEveryNodeReadYourWritesIdenticalEverywhere(t *testing.T) {
	c := startCluster(t, 3)
	c.waitReadyAll()
	for i, n := range c.nodes {
		res := push(t, n.Node, int64(1_700_000_000+i)*1e9, fmt.Sprintf("# TYPE written_by counter\nwritten_by{via=%q} %d\n", n.name, i+1), map[string]string{"job": "j", "instance": n.name})
		if res.Err != nil {
			t.Fatalf("push via %s: %v", n.name, res.Err)
		}
		// Read-your-writes: the accepting node shows it to a read that
		// passed the read barrier, as every default read does.
		if got := currentExposition(t, n); !strings.Contains(got, fmt.Sprintf(`written_by{instance=%q,job="j",via=%q} %d`, n.name, n.name, i+1)) {
			t.Fatalf("%s does not show its own write:\n%s", n.name, got)
		}
		c.assertIdentical()
	}
	// A consistency error from a follower comes back with upstream's words.
	for _, n := range c.nodes {
		res := push(t, n.Node, 1_800_000_000e9, "# TYPE written_by gauge\nwritten_by 1\n", map[string]string{"job": "other-" + n.name})
		if res.Err == nil || !strings.Contains(res.Err.Error(), `is not a COUNTER`) {
			t.Fatalf("via %s: want consistency error, got %v", n.name, res.Err)
		}
	}
	// The failure is recorded (at the leader's time) the same everywhere.
	want := c.assertIdentical()
	if !strings.Contains(want, `push_failure_time_seconds{instance="",job="other-node-1"} 1.`) {
		t.Fatalf("failure not recorded identically:\n%s", want)
	}
}

func TestLateNodeJoinsAsVoterAfterCatchingUp(t *testing.T) {
	c := startCluster(t, 3)
	c.waitReadyAll()
	for i := 0; i < 20; i++ {
		push(t, c.nodes[i%3].Node, int64(i+1)*1e9, fmt.Sprintf("m %d\n", i), map[string]string{"job": fmt.Sprint("j", i)})
	}
	late := c.start(nodeConfig(t.TempDir(), "node-late", 1, []string{c.nodes[1].GossipAddress()}))
	c.nodes = append(c.nodes, late)
	c.waitReadyAll()
	waitFor(t, "late node promoted to voter", 15*time.Second, func() bool {
		for _, m := range late.Status().Members {
			if m.Name == "node-late" {
				return m.Suffrage == "voter" && m.Status == "alive"
			}
		}
		return false
	})
	c.assertIdentical()
	// It accepts writes too.
	if res := push(t, late.Node, 99e9, "late 1\n", map[string]string{"job": "late"}); res.Err != nil {
		t.Fatal(res.Err)
	}
	c.assertIdentical()
}

func TestRestartedNodeRejoinsWithItsData(t *testing.T) {
	c := startCluster(t, 3)
	c.waitReadyAll()
	push(t, c.nodes[0].Node, 1e9, "a 1\n", map[string]string{"job": "a"})
	victim := c.nodes[2]
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	push(t, c.nodes[0].Node, 2e9, "b 1\n", map[string]string{"job": "b"})
	restarted := c.startAgain(victim, restartConfig(victim, 3, []string{c.nodes[0].GossipAddress()}))
	c.nodes[2] = restarted
	c.waitReadyAll()
	got := c.assertIdentical()
	if !strings.Contains(got, `b{instance="",job="b"} 1`) {
		t.Fatalf("restarted node missed a write:\n%s", got)
	}
	if n := len(restarted.Status().Members); n != 3 {
		t.Fatalf("restarted node sees %d members", n)
	}
}

func TestMinorityRefusesWritesAndServesReads(t *testing.T) {
	c := startCluster(t, 3)
	c.waitReadyAll()
	push(t, c.nodes[0].Node, 1e9, "kept 1\n", map[string]string{"job": "kept"})
	c.assertIdentical()
	survivor := c.nodes[0]
	for _, n := range c.nodes[1:] {
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "survivor loses its leader", 10*time.Second, func() bool {
		addr, _ := survivor.raft.LeaderWithID()
		return addr == "" && survivor.raft.State() != raft.Leader
	})
	start := time.Now()
	_, err := survivor.Submit(context.Background(), &fsm.Command{Op: fsm.OpDelete, Labels: map[string]string{"job": "kept"}})
	var u *UnavailableError
	if !errors.As(err, &u) {
		t.Fatalf("minority write: want UnavailableError, got %v", err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("gave up after %v, before the write timeout", d)
	}
	if got := exposition(t, survivor.state); !strings.Contains(got, `kept{instance="",job="kept"} 1`) {
		t.Fatalf("minority must still serve its last state:\n%s", got)
	}
	if survivor.Ready() == nil {
		t.Fatal("a node without leader must not be ready")
	}
}

func TestLeaderTransfersLeadershipOnShutdownAndStaysInConfig(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.byName(c.waitReadyAll())
	rest := c.others(leader)
	start := time.Now()
	if err := leader.Shutdown(); err != nil {
		t.Fatal(err)
	}
	newLeader := c.waitReadyAll(rest...)
	if newLeader == leader.name {
		t.Fatal("old leader still reported as leader")
	}
	t.Logf("new leader %s after %v", newLeader, time.Since(start))
	waitFor(t, "departed node shown as left, still a voter", 5*time.Second, func() bool {
		for _, m := range rest[0].Status().Members {
			if m.Name == leader.name {
				return m.Status == "left" && m.Suffrage == "voter"
			}
		}
		return false
	})
}

func TestNodesBeyondMaxVotersJoinAsNonVoters(t *testing.T) {
	// A cluster whose nodes keep 3 voters; the fourth node joins later.
	c2 := &testCluster{t: t}
	first := nodeConfig(t.TempDir(), "m-0", 3, nil)
	first.MaxVoters = 3
	n0 := c2.start(first)
	c2.nodes = append(c2.nodes, n0)
	for i := 1; i < 4; i++ {
		expect := 3
		if i == 3 {
			expect = 1
		}
		cfg := nodeConfig(t.TempDir(), fmt.Sprintf("m-%d", i), expect, []string{n0.GossipAddress()})
		cfg.MaxVoters = 3
		if i == 3 {
			c2.waitReadyAll()
		}
		c2.nodes = append(c2.nodes, c2.start(cfg))
	}
	c2.waitReadyAll()
	waitFor(t, "fourth node present as non-voter", 10*time.Second, func() bool {
		for _, m := range n0.Status().Members {
			if m.Name == "m-3" {
				return m.Suffrage == "nonvoter"
			}
		}
		return false
	})
	if v := n0.voterCount(); v != 3 {
		t.Fatalf("%d voters, want 3", v)
	}
	// A non-voter serves and forwards writes like any node.
	if res := push(t, c2.nodes[3].Node, 5e9, "nv 1\n", map[string]string{"job": "nv"}); res.Err != nil {
		t.Fatal(res.Err)
	}
	c2.assertIdentical()
}

func TestLeaderReapsDepartedVoterAfterTimeout(t *testing.T) {
	c := &testCluster{t: t}
	mk := func(i int, peers []string) Config {
		cfg := nodeConfig(t.TempDir(), fmt.Sprintf("r-%d", i), 3, peers)
		cfg.ReapTimeout = 500 * time.Millisecond
		return cfg
	}
	first := c.start(mk(0, nil))
	c.nodes = []*testNode{first, c.start(mk(1, []string{first.GossipAddress()})), c.start(mk(2, []string{first.GossipAddress()}))}
	leader := c.waitReadyAll()
	var victim *testNode
	for _, n := range c.nodes {
		if n.name != leader {
			victim = n
			break
		}
	}
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	l := c.byName(leader)
	waitFor(t, "departed voter reaped", 10*time.Second, func() bool { return l.voterCount() == 2 })
	// The remaining two still form a working cluster.
	for _, n := range c.nodes {
		if n != victim {
			if res := push(t, n.Node, 7e9, "after_reap 1\n", map[string]string{"job": "reap", "via": n.name}); res.Err != nil {
				t.Fatal(res.Err)
			}
		}
	}
}

// TestPeerByDNSName joins through a host name: memberlist resolves it and
// tries every address it resolves to (localhost may give 127.0.0.1 and ::1).
func TestPeerByDNSName(t *testing.T) {
	c := &testCluster{t: t}
	first := c.start(nodeConfig(t.TempDir(), "dns-0", 2, nil))
	_, port, _ := strings.Cut(first.GossipAddress(), ":")
	second := c.start(nodeConfig(t.TempDir(), "dns-1", 2, []string{"localhost:" + port}))
	c.nodes = []*testNode{first, second}
	c.waitReadyAll()
	if v := first.voterCount(); v != 2 {
		t.Fatalf("%d voters", v)
	}
}

// TestLateNodeNeverBootstrapsItsOwnCluster repeats the start of a node with
// the default bootstrap-expect of 1 and a peer in a running cluster: it must
// join that cluster every time, never bootstrap one of its own before its
// gossip reached the peer.
func TestLateNodeNeverBootstrapsItsOwnCluster(t *testing.T) {
	runs := 10
	if testing.Short() {
		runs = 2
	}
	for run := 0; run < runs; run++ {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			c := &testCluster{t: t}
			first := c.start(nodeConfig(t.TempDir(), "solo", 1, nil))
			c.nodes = []*testNode{first}
			c.waitReadyAll()
			late := c.start(nodeConfig(t.TempDir(), "late", 1, []string{first.GossipAddress()}))
			c.nodes = append(c.nodes, late)
			if leader := c.waitReadyAll(); leader != "solo" {
				t.Fatalf("leader %q: the late node formed its own cluster", leader)
			}
			waitFor(t, "late node in the solo cluster's configuration", 10*time.Second, func() bool {
				f := first.raft.GetConfiguration()
				return f.Error() == nil && len(f.Configuration().Servers) == 2
			})
		})
	}
}

// TestLocalApplyWaitShowsAWriteOnTheAcceptingNodeBeforeTheAnswer: with
// LocalApplyWait (what --cluster.stale-reads turns on), a write through a
// follower is answered only once the follower applied it, so even a read
// that skips the read barrier shows it there.
func TestLocalApplyWaitShowsAWriteOnTheAcceptingNodeBeforeTheAnswer(t *testing.T) {
	c := startClusterWith(t, 3, func(cfg *Config) { cfg.LocalApplyWait = true })
	leader := c.waitReadyAll()
	for i, n := range c.nodes {
		if n.name == leader {
			continue
		}
		push(t, n.Node, int64(i+1)*1e9, fmt.Sprintf("local_%d 1\n", i), map[string]string{"job": n.name})
		if got := exposition(t, n.state); !strings.Contains(got, fmt.Sprintf("local_%d{", i)) {
			t.Fatalf("%s does not show its own write without a read barrier:\n%s", n.name, got)
		}
	}
}
