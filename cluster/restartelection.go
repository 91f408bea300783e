package cluster

import (
	"time"

	"github.com/hashicorp/raft"
)

// A node restarting on its own raft state stands for election at once
// instead of after raft's usual wait.
//
// raft's follower waits one to two heartbeat timeouts (1–2 s by default)
// for a leader before it stands, and a candidate that gets no quorum one to
// two election timeouts before it tries again. After a restart of every
// node of a cluster, or of a single-node cluster, no leader comes, and the
// wait came after the restores: a 3-node cluster of about 99,000 groups was
// ready 2.1–2.7 s after its last node had restored its snapshot, 1.0 s of
// it waiting for the first election. So a voter of the configuration raft
// restored runs with both timeouts at the leader lease (the shortest raft
// accepts: 500 ms by default) until it knows a leader, and then with the
// configured ones again (the readiness loop and the leader loop restore
// them). Reloading a shorter heartbeat timeout wakes raft's follower timer
// at once, so the node stands as soon as raft has started: a lone voter
// wins at once, and in a cluster the voters that stand retry every half
// second or so until a majority's rafts are up and one of them wins (the
// same cluster was ready 0.9–1.0 s after its last restore). A node that
// restarts while a leader is about stands at once too, but raft's pre-vote
// keeps it from unseating a leader the others still follow: they refuse it
// (logged at debug level, logging.go), and the leader's next heartbeat
// makes it a follower. A node recovering its storage from its peers keeps
// the configured timeouts: its transport sends no vote requests anyway
// (transport.go).

// raftTimeouts are raft's configured timeouts, kept while shorter ones run.
type raftTimeouts struct {
	heartbeat, election time.Duration
}

// electSoonAfterRestart shortens raft's heartbeat and election timeouts to
// leaderLease if this node is a voter of the configuration raft restored
// and is not recovering. Called right after raft starts.
func (n *Node) electSoonAfterRestart(leaderLease time.Duration) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil || !isVoter(f.Configuration(), raft.ServerID(n.name)) || n.recovering.Load() {
		return
	}
	rc := n.raft.ReloadableConfig()
	normal := raftTimeouts{heartbeat: rc.HeartbeatTimeout, election: rc.ElectionTimeout}
	// Only a shorter heartbeat timeout wakes raft's follower timer. (raft
	// accepts no timeout below the lease, so both become the lease.)
	if leaderLease >= normal.heartbeat {
		return
	}
	if err := n.reloadRaft(func(c *raft.ReloadableConfig) { c.HeartbeatTimeout, c.ElectionTimeout = leaderLease, leaderLease }); err != nil {
		n.logger.Warn("could not shorten raft's timeouts for the first election after a restart", "err", err)
		return
	}
	n.restartTimeouts.Store(&normal)
	n.logger.Info("restarted as a voter: standing for election at once unless a leader is heard from; raft's timeouts are the leader lease until a leader is known", "leader_lease", leaderLease)
}

// restoreTimeouts brings back raft's configured timeouts once this node
// knows a leader, if electSoonAfterRestart shortened them.
func (n *Node) restoreTimeouts() {
	normal := n.restartTimeouts.Load()
	if normal == nil {
		return
	}
	if addr, _ := n.raft.LeaderWithID(); addr == "" {
		return
	}
	if err := n.reloadRaft(func(c *raft.ReloadableConfig) {
		c.HeartbeatTimeout, c.ElectionTimeout = normal.heartbeat, normal.election
	}); err != nil {
		n.logger.Warn("could not restore raft's timeouts", "err", err)
		return
	}
	n.restartTimeouts.CompareAndSwap(normal, nil)
}

// isVoter reports whether id is a voter of cfg.
func isVoter(cfg raft.Configuration, id raft.ServerID) bool {
	for _, s := range cfg.Servers {
		if s.ID == id && s.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}
