package test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// TestLoneNodeWhosePeerListNamesItselfBecomesReady: one process whose
// only --cluster.peer is itself (by address, and by a name that resolves
// to it) bootstraps with --cluster.bootstrap-expect=1 and takes writes. With
// another, unreachable peer listed as well, it keeps trying to reach that
// peer and does not bootstrap alone.
func TestLoneNodeWhosePeerListNamesItselfBecomesReady(t *testing.T) {
	for _, byName := range []bool{false, true} {
		m := newMember(t, "solo")
		self := m.gossip
		if byName {
			_, port, _ := net.SplitHostPort(m.gossip)
			self = net.JoinHostPort("localhost", port)
		}
		m.extra = []string{"--cluster.peer=" + self}
		m.start(1)
		waitReady(t, m)
		m.push("/metrics/job/solo", "x 1\n")
		if !strings.Contains(m.get("/metrics"), `x{instance="",job="solo"} 1`) {
			t.Fatalf("lone node (peer %s) did not store the push", self)
		}
		if !strings.Contains(m.out.String(), "every --cluster.peer is this node itself") {
			t.Fatalf("no log line about the peer list naming the node itself:\n%s", m.out)
		}
		m.stop()
	}

	guarded := newMember(t, "guarded")
	guarded.extra = []string{"--cluster.peer=" + guarded.gossip, "--cluster.peer=" + testutil.FreeAddr(t)}
	guarded.start(1)
	eventually(t, "two attempts to join the unreachable peer", 30*time.Second, func() bool {
		return strings.Count(guarded.out.String(), "could not join any peer yet") >= 2
	})
	if code, body, err := httpDo("GET", guarded.url()+"/-/ready", ""); err != nil || code != 503 {
		t.Fatalf("a node with an unreachable peer listed is ready: %d %v %s", code, err, body)
	}
}
