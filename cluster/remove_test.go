package cluster

import (
	"context"
	"testing"
	"time"
)

// Removal of a member that keeps running: no leader adds it back, neither
// the one that removed it nor a later one.

func TestRemoveMember(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.waitReadyAll()
	follower := c.anyBut(leader)
	// Removal asked through a follower is forwarded to the leader.
	if err := follower.RemoveMember(context.Background(), "node-x-unknown"); err == nil {
		t.Fatal("removing an unknown member must fail")
	}
	victim := c.byName(leader)
	if err := follower.RemoveMember(context.Background(), victim.name); err != nil {
		t.Fatal(err)
	}
	rest := c.others(victim)
	// The leader removed itself and still runs: the next leader, which
	// did not take the removal, must not add it back.
	var next string
	waitFor(t, "a leader among the others", 10*time.Second, func() bool {
		next = c.waitReadyAll(rest...)
		return next != victim.name
	})
	newLeader := c.byName(next)
	if !victim.localStatus().removed {
		t.Fatal("the removed node does not report its removal")
	}
	if err := newLeader.reconcile(); err != nil {
		t.Fatal(err)
	}
	for _, n := range rest {
		if v := n.voterCount(); v != 2 {
			t.Fatalf("%s counts %d voters after removal", n.name, v)
		}
	}
	assertLeftOut(t, rest, victim.name)
	_ = victim.Shutdown()
	if res := push(t, rest[1].Node, 1e9, "after 1\n", map[string]string{"job": "after"}); res.Err != nil {
		t.Fatal(res.Err)
	}
	c.assertIdentical(rest...)
}

// TestRemovedFollowerStaysOutAfterALeaderChange removes a follower that
// keeps running, then moves leadership to the other remaining voter, which
// did not take the removal: it must not add the follower back.
func TestRemovedFollowerStaysOutAfterALeaderChange(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.byName(c.waitReadyAll())
	var victim, other *testNode
	for _, n := range c.nodes {
		switch {
		case n == leader:
		case victim == nil:
			victim = n
		default:
			other = n
		}
	}
	if victim.localStatus().removed {
		t.Fatal("a member no operator removed reports its removal")
	}
	if err := other.RemoveMember(context.Background(), victim.name); err != nil {
		t.Fatal(err)
	}
	if !victim.localStatus().removed {
		t.Fatal("the removed follower does not report its removal")
	}
	if got, err := other.TransferLeadership(context.Background(), other.name); err != nil || got != other.name {
		t.Fatalf("transfer to %s: %q, %v", other.name, got, err)
	}
	rest := []*testNode{leader, other}
	waitFor(t, "the other voter leads", 10*time.Second, func() bool { return c.waitReadyAll(rest...) == other.name })
	if err := other.reconcile(); err != nil {
		t.Fatal(err)
	}
	assertLeftOut(t, rest, victim.name)
	if !other.wasRemoved(victim.name) {
		t.Fatal("the new leader did not note the removal it learned")
	}
}

// assertLeftOut fails t if a node of nodes has the member removed back in
// its configuration.
func assertLeftOut(t *testing.T, nodes []*testNode, removed string) {
	t.Helper()
	for _, n := range nodes {
		for _, s := range n.raft.GetConfiguration().Configuration().Servers {
			if string(s.ID) == removed {
				t.Fatalf("%s has the removed member %s back as %v", n.name, removed, s.Suffrage)
			}
		}
	}
}
