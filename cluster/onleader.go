package cluster

import (
	"context"
	"time"
)

// The one "ask the leader, retry until it answers" loop, shared by writes
// (Submit), operator actions (leaderOp) and read indexes (fetchReadIndex).

// leaderAttempt is one try of a request on the leader: self says this node
// leads, addr is the leader's raft address otherwise. It reports done when
// the answer is final, or the reason to try again.
type leaderAttempt func(addr string, self bool) (done bool, reason string)

// errStopping is the reason onLeader gives when the node shuts down.
const errStopping = "node is shutting down"

// onLeader runs attempt against the current leader until it is done, ctx
// ends (its deadline is the request's timeout) or the node stops, pausing
// between tries. It returns whether attempt finished and, if not, the last
// reason: the leader lookup's (no leader known, no contact with it) or the
// attempt's.
func (n *Node) onLeader(ctx context.Context, pause time.Duration, attempt leaderAttempt) (bool, string) {
	reason := "no raft leader known"
	for {
		if ctx.Err() != nil {
			return false, reason
		}
		addr, id, why := n.leaderContact()
		if why != "" {
			reason = why
		} else {
			done, r := attempt(string(addr), string(id) == n.name)
			if done {
				return true, ""
			}
			if r != "" {
				reason = r
			}
		}
		select {
		case <-n.stop:
			return false, errStopping
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}
