package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestExpiryJudgesPushesByTheClockThatStampedThem: a push taken by a node
// whose clock is 10 minutes behind is stamped by the leader and survives
// the leader's expiry (5 minutes); the leader never stamps a time earlier
// than one it stamped before.
func TestExpiryJudgesPushesByTheClockThatStampedThem(t *testing.T) {
	c := &testCluster{t: t}
	cfg0 := nodeConfig(t.TempDir(), "node-0", 3, nil)
	cfg0.ExpireAfter = 5 * time.Minute
	first := c.start(cfg0)
	c.nodes = append(c.nodes, first)
	for i := 1; i < 3; i++ {
		cfg := nodeConfig(t.TempDir(), fmt.Sprintf("node-%d", i), 3, []string{first.GossipAddress()})
		cfg.ExpireAfter = 5 * time.Minute
		if i == 2 {
			cfg.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
		}
		c.nodes = append(c.nodes, c.start(cfg))
	}
	leader := c.byName(c.waitReadyAll())
	skewed := c.nodes[2]
	push(t, skewed.Node, skewed.now().UnixNano(), "x 1\n", map[string]string{"job": "skewed"})
	if err := skewed.ReadBarrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	g := skewed.state.Group(map[string]string{"job": "skewed"})
	if g == nil {
		t.Fatal("push not applied")
	}
	stamped := time.Unix(0, g.LastPushUnixNano())
	if d := leader.now().Sub(stamped); d < 0 || d > time.Minute {
		t.Fatalf("push time %v is %v off the leader's clock", stamped, d)
	}
	if err := leader.expireOnce(leader.now()); err != nil {
		t.Fatal(err)
	}
	if skewed.state.Group(map[string]string{"job": "skewed"}) == nil {
		t.Fatal("the leader expired a push before --push.expire-after passed on its own clock")
	}
	// A stamp never goes back, even if the clock does (here: a time
	// stamped an hour ahead, as by a clock that was stepped back since).
	ahead := leader.now().Add(time.Hour).UnixNano()
	leader.lastStamp.Store(ahead)
	if got := leader.stamp(); got < ahead {
		t.Fatalf("stamp went back from %d to %d", ahead, got)
	}
}
