package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// runBootstrap bootstraps the cluster once, like Consul's bootstrap-expect:
// only while this node has no raft state, only when at least Expect alive
// members with no state agree on Expect and no member belongs to a cluster
// already; then every one of them bootstraps with the same sorted set.
// With Expect 1 and no peers, the node bootstraps alone at once; with peers,
// nothing happens before gossip reached one of them.
func (n *Node) runBootstrap() {
	defer n.wg.Done()
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		done, err := n.maybeBootstrap()
		if err != nil {
			n.logger.Error("bootstrap failed", "err", err)
		}
		if done {
			return
		}
		select {
		case <-n.stop:
			return
		case <-n.events:
		case <-ticker.C:
		}
	}
}

// maybeBootstrap reports done once bootstrapping is no longer this node's
// business: it bootstrapped, or it learned of an existing cluster.
func (n *Node) maybeBootstrap() (bool, error) {
	if n.hasState() {
		return true, nil
	}
	select {
	case <-n.joined:
	default:
		// Until gossip reached a peer, this node cannot know whether a
		// cluster exists already: never bootstrap on a partial view.
		return false, nil
	}
	expect := n.cfg.BootstrapExpect
	var servers []raft.Server
	if expect == 1 && (len(n.cfg.Peers) == 0 || n.alone.Load()) {
		servers = []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.name), Address: raft.ServerAddress(n.raftAddr)}}
	} else {
		for name, m := range n.gossip.snapshot() {
			if m.state != memberlist.StateAlive || !m.hasRaw {
				continue
			}
			if m.meta.HasState {
				n.logger.Info("found a bootstrapped cluster; waiting to be added by its leader", "member", name)
				return true, nil
			}
			if m.meta.Expect != expect {
				n.logger.Warn("member disagrees on bootstrap-expect; not bootstrapping", "member", name, "its_expect", m.meta.Expect, "ours", expect)
				return false, nil
			}
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(name), Address: raft.ServerAddress(m.meta.RaftAddr)})
		}
		if len(servers) < expect {
			return false, nil
		}
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	n.logger.Info("bootstrapping the cluster", "servers", fmt.Sprint(servers))
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return false, fmt.Errorf("bootstrap cluster: %w", err)
	}
	return true, nil
}

// runLeaderLoop reconciles the raft configuration with the members while
// this node is the leader, on every membership event and every second.
func (n *Node) runLeaderLoop() {
	defer n.wg.Done()
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		n.restoreTimeouts() // once a leader is known (the readiness loop does so before the node is ready)
		if n.raft.State() == raft.Leader {
			if err := n.reconcile(); err != nil {
				n.logger.Warn("reconcile raft membership", "err", err)
			}
		}
		select {
		case <-n.stop:
			return
		case <-n.changes:
		case <-ticker.C:
		case <-n.raft.LeaderCh():
		}
	}
}

// reconcile adds alive members that are not in the configuration (as
// non-voters first, promoted once caught up while voters are fewer than
// MaxVoters) and removes voters that failed or left longer than
// ReapTimeout ago, as long as the remaining voters keep a quorum.
func (n *Node) reconcile() error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	cfg := f.Configuration()
	inConfig := map[raft.ServerID]raft.Server{}
	voters := 0
	for _, s := range cfg.Servers {
		inConfig[s.ID] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	members := n.gossip.snapshot()
	addable := n.askOutsiders(members, inConfig)
	timeout := n.cfg.WriteTimeout

	for name, m := range members {
		if m.state != memberlist.StateAlive || !m.hasRaw || name == n.name {
			continue
		}
		id := raft.ServerID(name)
		s, ok := inConfig[id]
		switch {
		case !ok && !addable[name]:
			// An operator removed it (marked by markRemoved): it must not
			// come back while it stays up; once it leaves or fails, a
			// restart may rejoin. Or it does not answer yet: the next
			// round asks again (askOutsiders).
			continue
		case !ok:
			n.logger.Info("adding member to raft as non-voter", "member", name, "raft_address", m.meta.RaftAddr)
			if err := n.raft.AddNonvoter(id, raft.ServerAddress(m.meta.RaftAddr), 0, timeout).Error(); err != nil {
				return fmt.Errorf("add non-voter %s: %w", name, err)
			}
		case s.Address != raft.ServerAddress(m.meta.RaftAddr):
			n.logger.Info("member's raft address changed", "member", name, "old", s.Address, "new", m.meta.RaftAddr)
			add := n.raft.AddNonvoter
			if s.Suffrage == raft.Voter {
				add = n.raft.AddVoter
			}
			if err := add(id, raft.ServerAddress(m.meta.RaftAddr), 0, timeout).Error(); err != nil {
				return fmt.Errorf("update address of %s: %w", name, err)
			}
		case s.Suffrage == raft.Nonvoter && voters < n.cfg.MaxVoters:
			if !n.caughtUp(m.meta.RaftAddr) {
				continue
			}
			n.logger.Info("promoting caught-up member to voter", "member", name)
			if err := n.raft.AddVoter(id, s.Address, 0, timeout).Error(); err != nil {
				return fmt.Errorf("promote %s: %w", name, err)
			}
			voters++
		}
	}

	aliveVoters := 0
	for id, s := range inConfig {
		if s.Suffrage != raft.Voter {
			continue
		}
		if m, ok := members[string(id)]; (ok && m.state == memberlist.StateAlive) || string(id) == n.name {
			aliveVoters++
		}
	}
	for id, s := range inConfig {
		if string(id) == n.name {
			continue
		}
		m, ok := members[string(id)]
		if !ok || (m.state != memberlist.StateDead && m.state != memberlist.StateLeft) || time.Since(m.since) < n.cfg.ReapTimeout {
			continue
		}
		if s.Suffrage == raft.Voter {
			remaining := voters - 1
			if aliveVoters < remaining/2+1 {
				n.logger.Warn("not reaping failed voter: quorum would be at risk", "member", id, "alive_voters", aliveVoters, "voters", voters)
				continue
			}
			voters--
		}
		n.logger.Warn("reaping member gone longer than the reap timeout", "member", id, "state", memberStatus(m.state), "since", m.since)
		if err := n.raft.RemoveServer(id, 0, timeout).Error(); err != nil {
			return fmt.Errorf("remove %s: %w", id, err)
		}
	}
	return nil
}

// caughtUp asks a member for its applied index and compares it with ours.
func (n *Node) caughtUp(raftAddr string) bool {
	st, err := n.statusOf(raftAddr, time.Now().Add(2*time.Second))
	if err != nil {
		return false
	}
	const maxLag = 64
	return st.appliedIndex+maxLag >= n.raft.CommitIndex()
}

// removeServer removes a server from the raft configuration; this node
// must be the leader.
func (n *Node) removeServer(id raft.ServerID) error {
	if n.raft.State() != raft.Leader {
		return &UnavailableError{Reason: "this node is not the leader"}
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	var addr raft.ServerAddress
	found := false
	for _, s := range f.Configuration().Servers {
		if s.ID == id {
			found, addr = true, s.Address
		}
	}
	if !found {
		return fmt.Errorf("no server %q in the raft configuration", id)
	}
	n.markRemoved(string(id))
	n.noticeRemoval(id, addr)
	if err := n.raft.RemoveServer(id, 0, n.cfg.WriteTimeout).Error(); err != nil {
		return fmt.Errorf("remove server %q: %w", id, err)
	}
	n.logger.Info("removed server from the raft configuration", "server", id)
	return nil
}

// noticeRemoval tells a member that an operator is removing it, before the
// removal is proposed (the leader removing itself notes it itself). A
// member still running then says so to every later leader, which does not
// add it back (askOutsiders); this leader has marked it already. A member
// that does not answer is most likely down: a later leader would add it
// back only if it came back without a restart.
func (n *Node) noticeRemoval(id raft.ServerID, addr raft.ServerAddress) {
	if string(id) == n.name {
		n.removedByOperator.Store(true)
		return
	}
	reply, err := n.rpc.call(string(addr), time.Now().Add(time.Second), []byte{methodRemoving})
	if err == nil {
		var r applyReply
		if r, err = decodeApplyReply(reply); err == nil && r.code != codeOK {
			err = fmt.Errorf("reply code %d: %s", r.code, r.message)
		}
	}
	if err != nil {
		n.logger.Info("could not tell the member it is being removed; if it is running, a later leader may add it back", "member", id, "err", err)
	}
}

// askOutsiders asks the alive members outside the configuration, all at
// once and for a second at most, whether an operator removed them while
// they run, and returns those that may be added. A member that says it was
// removed is marked (markRemoved), so it is not asked again until it
// leaves or fails; one that does not answer is asked again next round.
// The leader that removed a member marked it itself; a later leader (after
// an operator removed the leader) learns it here.
func (n *Node) askOutsiders(members map[string]memberInfo, inConfig map[raft.ServerID]raft.Server) map[string]bool {
	type answer struct {
		name    string
		removed bool
		err     error
	}
	answers := make(chan answer, len(members))
	deadline := time.Now().Add(time.Second)
	asked := 0
	for name, m := range members {
		if _, in := inConfig[raft.ServerID(name)]; in || m.state != memberlist.StateAlive || !m.hasRaw || name == n.name || n.wasRemoved(name) {
			continue
		}
		asked++
		go func() {
			st, err := n.statusOf(m.meta.RaftAddr, deadline)
			answers <- answer{name, st.removed, err}
		}()
	}
	addable := map[string]bool{}
	for range asked {
		switch a := <-answers; {
		case a.err != nil:
			n.logger.Debug("not adding a member that does not answer its status", "member", a.name, "err", a.err)
		case a.removed:
			n.markRemoved(a.name)
			n.logger.Info("not adding back a member an operator removed while it runs", "member", a.name)
		default:
			addable[a.name] = true
		}
	}
	return addable
}

// markRemoved remembers that an operator removed a member, so the
// reconciler does not add it back while it is still running.
func (n *Node) markRemoved(name string) {
	n.removedMu.Lock()
	defer n.removedMu.Unlock()
	n.removed[name] = struct{}{}
}

// wasRemoved reports whether an operator removed the member since it was
// last seen leaving or failing.
func (n *Node) wasRemoved(name string) bool {
	n.removedMu.Lock()
	defer n.removedMu.Unlock()
	_, ok := n.removed[name]
	return ok
}

// forgetRemoved clears the mark once the member left or failed: when it is
// started again, it may rejoin.
func (n *Node) forgetRemoved(name string) {
	n.removedMu.Lock()
	defer n.removedMu.Unlock()
	delete(n.removed, name)
}

// RemoveMember removes a member from the raft configuration for good (an
// operator's decision, e.g. a node that will not come back), through the
// leader. A removed node that is still running stops receiving the log.
func (n *Node) RemoveMember(ctx context.Context, name string) error {
	return n.leaderOp(ctx, "remove "+name, methodRemove, []byte(name), func() error { return n.removeServer(raft.ServerID(name)) })
}
