package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// startClusterWith starts size nodes like startCluster, each config changed
// by mutate first.
func startClusterWith(t *testing.T, size int, mutate func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	cfg := nodeConfig(t.TempDir(), "node-0", size, nil)
	mutate(&cfg)
	first := c.start(cfg)
	c.nodes = append(c.nodes, first)
	for i := 1; i < size; i++ {
		cfg := nodeConfig(t.TempDir(), fmt.Sprintf("node-%d", i), size, []string{first.GossipAddress()})
		mutate(&cfg)
		c.nodes = append(c.nodes, c.start(cfg))
	}
	return c
}

func jobs(s *fsm.FSM) string {
	var out []string
	for _, g := range s.Groups() {
		out = append(out, g.Labels.Get("job"))
	}
	return strings.Join(out, ",")
}

func parseFamilies(t *testing.T, text string) []*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	m, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.MetricFamily
	for _, mf := range m {
		out = append(out, mf)
	}
	return out
}

func TestTransferLeadershipThroughAnyNode(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.waitReadyAll()
	follower := c.anyBut(leader)
	// Asked through a follower: forwarded to the leader.
	got, err := follower.TransferLeadership(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if got == leader || got == "" {
		t.Fatalf("leader after transfer: %q (was %s)", got, leader)
	}
	if l := c.waitReadyAll(); l != got {
		t.Fatalf("cluster agrees on %s, transfer reported %s", l, got)
	}
	// To a named voter, asked through the leader itself.
	target := leader
	got, err = c.byName(c.waitReadyAll()).TransferLeadership(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	if got != target {
		t.Fatalf("leader %s, want %s", got, target)
	}
	c.waitReadyAll()
	for _, to := range []string{"nobody", target} {
		if _, err := follower.TransferLeadership(context.Background(), to); err == nil {
			t.Fatalf("transfer to %q must fail", to)
		}
	}
	// Writes go on.
	if res := push(t, follower.Node, 1e9, "after 1\n", map[string]string{"job": "after"}); res.Err != nil {
		t.Fatal(res.Err)
	}
	c.assertIdentical()

	// A lone node has nobody to hand over to.
	solo, _ := startNode(t, t.TempDir())
	t.Cleanup(func() { _ = solo.Shutdown() })
	if _, err := solo.TransferLeadership(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "no other voter") {
		t.Fatalf("lone node: %v", err)
	}
}

func TestRecoverSurvivorOfLostQuorum(t *testing.T) {
	c := startCluster(t, 3)
	c.waitReadyAll()
	for i := 0; i < 10; i++ {
		push(t, c.nodes[i%3].Node, int64(i+1)*1e9, fmt.Sprintf("# TYPE v gauge\nv %d\n", i), map[string]string{"job": fmt.Sprint("j", i)})
	}
	// Some of the log in a snapshot, some after it.
	if err := c.nodes[0].Snapshot(); err != nil {
		t.Fatal(err)
	}
	push(t, c.nodes[0].Node, 20e9, "after_snapshot 1\n", map[string]string{"job": "late"})
	want := c.assertIdentical()
	survivor := c.nodes[0]

	// Two nodes are lost for good; the survivor alone cannot elect a
	// leader and refuses writes.
	for _, n := range c.nodes[1:] {
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "survivor without leader", 10*time.Second, func() bool { return survivor.Ready() != nil })
	if err := survivor.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// Offline recovery: the survivor is the only voter, at a new address.
	addr := testutil.FreeAddr(t)
	if _, err := Recover(survivor.dir, []Voter{{Name: "node-0", RaftAddress: "127.0.0.1:1"}}, func() *fsm.FSM { return fsm.New(nil) }, nil); err != nil {
		t.Fatal(err)
	}
	// Running it again is harmless; without voters it keeps the node
	// alone at the address of its last configuration.
	cfgWritten, err := Recover(survivor.dir, []Voter{{Name: "node-0", RaftAddress: addr}}, func() *fsm.FSM { return fsm.New(nil) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgWritten.Servers) != 1 || string(cfgWritten.Servers[0].Address) != addr {
		t.Fatalf("configuration %v", cfgWritten)
	}
	cfgDefault, err := Recover(survivor.dir, nil, func() *fsm.FSM { return fsm.New(nil) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgDefault.Servers) != 1 || cfgDefault.Servers[0].ID != "node-0" || string(cfgDefault.Servers[0].Address) != addr {
		t.Fatalf("default configuration %v", cfgDefault)
	}
	if _, err := Recover(survivor.dir, []Voter{{Name: "someone-else", RaftAddress: addr}}, func() *fsm.FSM { return fsm.New(nil) }, nil); err == nil {
		t.Fatal("voters without this node must be refused")
	}

	cfg := nodeConfig(survivor.dir, "node-0", 3, nil)
	cfg.RaftListen = addr
	recovered := c.start(cfg)
	c.nodes = []*testNode{recovered}
	if leader := c.waitReadyAll(); leader != "node-0" {
		t.Fatalf("leader %q", leader)
	}
	if got := exposition(t, recovered.state); got != want {
		t.Fatalf("recovered state:\n%s\nwant:\n%s", got, want)
	}
	if v := recovered.voterCount(); v != 1 {
		t.Fatalf("%d voters", v)
	}
	if res := push(t, recovered.Node, 30e9, "after_recovery 1\n", map[string]string{"job": "recovered"}); res.Err != nil {
		t.Fatal(res.Err)
	}
	// A new node joins the recovered cluster.
	late := c.start(nodeConfig(t.TempDir(), "node-new", 1, []string{recovered.GossipAddress()}))
	c.nodes = append(c.nodes, late)
	c.waitReadyAll()
	if got := c.assertIdentical(); !strings.Contains(got, `after_recovery{instance="",job="recovered"} 1`) {
		t.Fatalf("state after recovery:\n%s", got)
	}
	f := recovered.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == "node-1" || s.ID == "node-2" {
			t.Fatalf("lost node %s still in the configuration", s.ID)
		}
	}
}

func TestRecoverRefusesARunningNode(t *testing.T) {
	dir := t.TempDir()
	n, _ := startNode(t, dir)
	defer n.Shutdown()
	if _, err := Recover(dir, nil, func() *fsm.FSM { return fsm.New(nil) }, nil); err == nil || !strings.Contains(err.Error(), "stop the node first") {
		t.Fatalf("recover of a running node: %v", err)
	}
	if _, err := Recover(t.TempDir(), nil, func() *fsm.FSM { return fsm.New(nil) }, nil); err == nil {
		t.Fatal("recover of an empty directory must fail")
	}
}

func TestParseVoters(t *testing.T) {
	v, err := ParseVoters("a=127.0.0.1:1, b=host:2")
	if err != nil || len(v) != 2 || v[1] != (Voter{Name: "b", RaftAddress: "host:2"}) {
		t.Fatalf("%v %v", v, err)
	}
	for _, bad := range []string{"a", "=x:1", "a=", "a=x:1,a=y:2"} {
		if _, err := ParseVoters(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
