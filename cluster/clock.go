package cluster

import (
	"math"
	"sync"
	"time"
)

// One clock for the log: the leader stamps every command it appends with
// its own time (applyAsLeader), and computes the expiry cutoff from the
// same clock, so a push is expired only once --push.expire-after has
// passed on the clock that stamped it. Only a change of leader brings in
// another clock; the offsets between the members' clocks are measured here
// (a status round trip carries the responder's wall clock), exported as
// pushgateway_cluster_clock_offset_seconds, shown on the cluster page and
// logged when they exceed clockOffsetWarn.

const (
	// probeInterval is how often a node asks every other member for its
	// status: its clock, and whether its storage is short.
	probeInterval = 2 * time.Second
	// clockOffsetWarn is the offset from the leader's clock above which a
	// node warns in its log.
	clockOffsetWarn = time.Second
)

// now is the node's wall clock.
func (n *Node) now() time.Time {
	if n.cfg.Now != nil {
		return n.cfg.Now()
	}
	return time.Now()
}

// stamp returns the time the leader puts into the next command: its clock,
// but never earlier than a time it stamped before (a clock stepped back
// does not make the log's times go back).
func (n *Node) stamp() int64 {
	t := n.now().UnixNano()
	for {
		last := n.lastStamp.Load()
		if t <= last {
			t = last
		}
		if n.lastStamp.CompareAndSwap(last, t) {
			return t
		}
	}
}

// memberProbe keeps what this node last learned from the other members'
// status: their clocks' offsets from its own, and which of them have their
// storage below its reserve (diskspace.go).
type memberProbe struct {
	mu      sync.Mutex
	offsets map[string]time.Duration // member's clock minus ours
	warned  bool
	// storageLow says which members reported their storage below their
	// free-space reserve (diskspace.go); the same round trip carries it.
	storageLow map[string]bool
}

// fromLeader returns every measured member's offset from the leader's
// clock (none while the leader's is not measured).
func (c *memberProbe) fromLeader(leader string) map[string]time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.offsets[leader]
	if !ok {
		return nil
	}
	out := make(map[string]time.Duration, len(c.offsets))
	for name, off := range c.offsets {
		out[name] = off - l
	}
	return out
}

// runMemberProbe measures every alive member's clock (and learns whether
// its storage is short) every probeInterval.
func (n *Node) runMemberProbe() {
	defer n.wg.Done()
	ticker := time.NewTicker(probeInterval)
	defer ticker.Stop()
	for {
		n.probeMembers()
		select {
		case <-n.stop:
			return
		case <-ticker.C:
		}
	}
}

// probeMembers measures each member once: offset = its clock at the middle
// of the round trip minus ours.
func (n *Node) probeMembers() {
	offsets := map[string]time.Duration{n.name: 0}
	low := map[string]bool{}
	for name, m := range n.gossip.snapshot() {
		if name == n.name || m.meta.RaftAddr == "" || memberStatus(m.state) != "alive" {
			continue
		}
		sent := n.now()
		st, err := n.statusOf(m.meta.RaftAddr, time.Now().Add(2*time.Second))
		received := n.now()
		if err != nil {
			continue
		}
		low[name] = st.storageLow
		if st.wallUnixNano == 0 {
			continue
		}
		mid := sent.Add(received.Sub(sent) / 2)
		offsets[name] = time.Unix(0, st.wallUnixNano).Sub(mid)
	}
	n.probe.mu.Lock()
	n.probe.offsets, n.probe.storageLow = offsets, low
	n.probe.mu.Unlock()

	_, leader := n.raft.LeaderWithID()
	off, ok := n.probe.fromLeader(string(leader))[n.name]
	if !ok {
		return
	}
	n.probe.mu.Lock()
	defer n.probe.mu.Unlock()
	switch over := math.Abs(off.Seconds()) > clockOffsetWarn.Seconds(); {
	case over && !n.probe.warned:
		n.logger.Warn("this node's clock is off the leader's; times in the log come from the leader's clock, but a change of leader brings in this one: synchronize the clocks (NTP)",
			"offset", off.String(), "leader", string(leader), "warn_above", clockOffsetWarn.String())
		n.probe.warned = true
	case !over && n.probe.warned:
		n.logger.Info("this node's clock is in step with the leader's again", "offset", off.String(), "leader", string(leader))
		n.probe.warned = false
	}
}
