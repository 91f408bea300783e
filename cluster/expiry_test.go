package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

func TestExpiryRemovesTheSameGroupsOnEveryNode(t *testing.T) {
	const expireAfter = 2 * time.Second
	c := startClusterWith(t, 3, func(cfg *Config) { cfg.ExpireAfter = expireAfter })
	c.waitReadyAll()
	now := time.Now()
	// Pushed long ago (the leader stamps every push with its clock, so
	// only an imported or restored group can be that old), pushed just now
	// and going stale, and kept fresh by repeated pushes.
	imp := &fsm.Command{Op: fsm.OpImport, TimeUnixNano: now.UnixNano(), Source: "test", Import: []*fsm.Group{{
		Labels:   fsm.LabelsOf(map[string]string{"job": "ancient"}),
		Families: fsm.Families{fsm.NewFamily(parseFamilies(t, "ancient{job=\"ancient\"} 1\n")[0], now.Add(-time.Hour).UnixNano())},
	}}}
	if res, err := c.nodes[0].Submit(context.Background(), imp); err != nil || res.Err != nil {
		t.Fatalf("import: %v %v", res, err)
	}
	push(t, c.nodes[1].Node, now.UnixNano(), "stale 1\n", map[string]string{"job": "stale"})
	push(t, c.nodes[2].Node, now.UnixNano(), "fresh 1\n", map[string]string{"job": "fresh"})
	// A group created by a rejected push (timestamps): its failure counts.
	cmd := &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "failed"}, TimeUnixNano: now.UnixNano(),
		Families: parseFamilies(t, "failed 1 1000\n")}
	if res, err := c.nodes[0].Submit(context.Background(), cmd); err != nil || res.Err == nil {
		t.Fatalf("push with timestamp: %v %v", res, err)
	}

	waitFor(t, "the ancient group expired on every node", 10*time.Second, func() bool {
		for _, n := range c.nodes {
			if n.state.Group(map[string]string{"job": "ancient"}) != nil {
				return false
			}
		}
		return true
	})
	c.assertIdentical()
	if got := jobs(c.nodes[0].state); got != "failed,fresh,stale" {
		t.Fatalf("groups after the first expiry: %s", got)
	}

	// Keep "fresh" fresh through any node while "stale" and "failed" age.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		push(t, c.nodes[i%3].Node, time.Now().UnixNano(), "fresh 1\n", map[string]string{"job": "fresh"})
		gone := true
		for _, n := range c.nodes {
			if n.state.Len() != 1 {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale groups not expired: %s", jobs(c.nodes[0].state))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if elapsed := time.Since(now); elapsed < expireAfter {
		t.Fatalf("groups expired after %v, before --push.expire-after %v", elapsed, expireAfter)
	}
	got := c.assertIdentical()
	if !strings.Contains(got, `fresh{instance="",job="fresh"} 1`) || strings.Contains(got, `job="stale"`) || strings.Contains(got, `job="failed"`) {
		t.Fatalf("after expiry:\n%s", got)
	}
	for _, n := range c.nodes {
		if j := jobs(n.state); j != "fresh" {
			t.Fatalf("%s holds %s", n.name, j)
		}
	}
}
