package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// TestKilledNodeReturnsAtNewAddresses kills a member with kill -9 (it
// cannot say goodbye to the gossip) and starts it again, same name and
// storage, on new raft and gossip addresses: what a Kubernetes pod does
// when it is rescheduled and gets a new IP. The cluster must take it back
// as a voter at its new address, and it must catch up.
func TestKilledNodeReturnsAtNewAddresses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	nodes, leader := startThree(t)
	var moved *member
	for _, m := range nodes {
		if m.name != leader {
			moved = m
		}
	}
	moved.kill()
	for _, m := range nodes {
		if m != moved {
			m.push("/metrics/job/while_away", "while_away 1\n")
			break
		}
	}
	moved.raftAddr, moved.gossip = testutil.FreeAddr(t), testutil.FreeAddr(t)
	moved.start(3, nodes...)
	took := eventually(t, moved.name+" back as a voter at its new addresses", 60*time.Second, func() bool {
		for _, m := range nodes {
			v, ok := m.cluster()
			if !ok {
				return false
			}
			for _, mem := range v.Members {
				if mem.Name == moved.name && (mem.Status != "alive" || mem.Suffrage != "voter" ||
					mem.GossipAddress != moved.gossip || mem.RaftAddress != moved.raftAddr) {
					return false
				}
			}
		}
		return true
	})
	t.Logf("%s rejoined %v after its restart at new addresses", moved.name, took.Round(time.Millisecond))
	waitReady(t, nodes...)
	moved.push("/metrics/job/after_move", "after_move 1\n")
	state := assertSameState(t, nodes...)
	for _, job := range []string{"while_away", "after_move"} {
		if !strings.Contains(state, fmt.Sprintf("%q", job)) {
			t.Fatalf("%s missing after the move:\n%s", job, state)
		}
	}
}
