package cluster

import (
	"time"

	"github.com/hashicorp/raft"
)

// A node that is the only voter of its stored configuration (a single-node
// cluster restarting) elects itself at once instead of waiting for a
// leader's heartbeat that cannot come. Raft's follower waits one to two
// heartbeat timeouts (1–2 s by default) before its first election;
// reloading a shorter timeout wakes that timer at once, and the node, a
// quorum by itself, wins. The configured timeouts come back as soon as it
// leads, so a cluster it grows into later runs with them.

// electAloneAtOnce starts the election now if this node is the only voter
// of the configuration raft restored. Called right after raft starts.
func (n *Node) electAloneAtOnce(leaderLease time.Duration) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil || !loneVoter(f.Configuration(), raft.ServerID(n.name)) {
		return
	}
	normal := n.raft.ReloadableConfig().HeartbeatTimeout
	// raft accepts no heartbeat timeout below the leader lease.
	if leaderLease >= normal {
		return
	}
	if err := n.reloadRaft(func(c *raft.ReloadableConfig) { c.HeartbeatTimeout = leaderLease }); err != nil {
		n.logger.Warn("could not start the election of a lone voter at once", "err", err)
		return
	}
	n.restoreHeartbeat.Store(int64(normal))
	n.logger.Info("the only voter of the stored configuration: electing itself at once")
}

// restoreTimeoutsAsLeader brings back the configured heartbeat timeout
// once this node leads, if electAloneAtOnce shortened it.
func (n *Node) restoreTimeoutsAsLeader() {
	normal := time.Duration(n.restoreHeartbeat.Load())
	if normal == 0 || n.raft.State() != raft.Leader {
		return
	}
	if err := n.reloadRaft(func(c *raft.ReloadableConfig) { c.HeartbeatTimeout = normal }); err != nil {
		n.logger.Warn("could not restore raft's timeouts", "err", err)
		return
	}
	n.restoreHeartbeat.Store(0)
}

// loneVoter reports whether id is the only voter of cfg.
func loneVoter(cfg raft.Configuration, id raft.ServerID) bool {
	voters := 0
	self := false
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			voters++
			self = self || s.ID == id
		}
	}
	return voters == 1 && self
}
