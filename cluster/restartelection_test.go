package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// TestLoneVoterElectsItselfAtOnce: a single-node cluster restarting does
// not wait for a heartbeat timeout before it leads again. With a heartbeat
// timeout of an hour it is ready again within the test's wait, and once it
// leads its configured timeout is back.
func TestLoneVoterElectsItselfAtOnce(t *testing.T) {
	dir := t.TempDir()
	n, _ := startNode(t, dir)
	if r := push(t, n, 1, "a 1\n", map[string]string{"job": "j"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}

	hour := func(rc *raft.Config) { rc.HeartbeatTimeout, rc.ElectionTimeout = time.Hour, time.Hour }
	n2, err := Start(Config{DataDir: dir, NodeName: "n1", RaftListen: "127.0.0.1:0", GossipListen: "127.0.0.1:0", LocalNetwork: true,
		State: fsm.New(nil), WriteTimeout: 5 * time.Second, tuneRaft: hour})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Shutdown()
	waitReady(t, n2) // an hour without the election at once
	deadline := time.Now().Add(10 * time.Second)
	for rc := n2.raft.ReloadableConfig(); rc.HeartbeatTimeout != time.Hour || rc.ElectionTimeout != time.Hour; rc = n2.raft.ReloadableConfig() {
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat timeout %v and election timeout %v after leading, want the configured hour", rc.HeartbeatTimeout, rc.ElectionTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n2.raft.State() != raft.Leader {
		t.Fatalf("state %v", n2.raft.State())
	}
}

// TestIsVoter: only a voter of the configuration stands; non-voters and
// strangers do not.
func TestIsVoter(t *testing.T) {
	voter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Voter} }
	nonvoter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Nonvoter} }
	for _, c := range []struct {
		servers []raft.Server
		want    bool
	}{
		{[]raft.Server{voter("n1")}, true},
		{[]raft.Server{voter("n1"), nonvoter("n2")}, true},
		{[]raft.Server{voter("n1"), voter("n2"), voter("n3")}, true},
		{[]raft.Server{voter("n2")}, false},
		{[]raft.Server{nonvoter("n1"), voter("n2")}, false},
		{nil, false},
	} {
		if got := isVoter(raft.Configuration{Servers: c.servers}, "n1"); got != c.want {
			t.Errorf("%v: %v, want %v", c.servers, got, c.want)
		}
	}
}

// TestRestartedClusterElectsSoon: every node of a cluster restarted with
// raft's heartbeat and election timeouts at an hour (raft alone would wait
// that long for the first election) elects a leader and is ready, and each
// node runs with the configured hour again once it knows the leader.
func TestRestartedClusterElectsSoon(t *testing.T) {
	c := startCluster(t, 3)
	c.waitReadyAll()
	for _, n := range c.nodes {
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	hour := func(rc *raft.Config) { rc.HeartbeatTimeout, rc.ElectionTimeout = time.Hour, time.Hour }
	for i, n := range c.nodes {
		cfg := restartConfig(n, 3, []string{c.nodes[(i+1)%len(c.nodes)].GossipAddress()})
		cfg.tuneRaft = hour
		c.nodes[i] = c.startAgain(n, cfg)
	}
	c.waitReadyAll()
	for _, n := range c.nodes {
		if rc := n.raft.ReloadableConfig(); rc.HeartbeatTimeout != time.Hour || rc.ElectionTimeout != time.Hour {
			t.Fatalf("%s ready with heartbeat timeout %v and election timeout %v, want the configured hour", n.name, rc.HeartbeatTimeout, rc.ElectionTimeout)
		}
	}
}

// TestRestartedFollowerLeavesTheLeaderInPlace: a follower restarted while
// the cluster has a leader stands at once, but the pre-vote the others
// refuse keeps the leader and its term: a rolling restart elects no one.
func TestRestartedFollowerLeavesTheLeaderInPlace(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.byName(c.waitReadyAll())
	term := leader.raft.Stats()["term"]
	follower := c.anyBut(leader.name)
	if err := follower.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.nodes {
		if n == follower {
			c.nodes[i] = c.startAgain(n, restartConfig(n, 3, []string{leader.GossipAddress()}))
		}
	}
	if now := c.waitReadyAll(); now != leader.name || leader.raft.Stats()["term"] != term || leader.raft.State() != raft.Leader {
		t.Fatalf("after a follower's restart: leader %s in term %s, want %s still leading in term %s", now, leader.raft.Stats()["term"], leader.name, term)
	}
	if !strings.Contains(c.byName(follower.name).logs.String(), "standing for election at once") {
		t.Fatal("the restarted follower did not run with the short timeouts")
	}
}
