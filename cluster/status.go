package cluster

import (
	"sort"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// Status is this node's view of the cluster, as served by /api/v1/cluster.
type Status struct {
	Self    string       `json:"self"`
	Leader  string       `json:"leader"`
	Raft    RaftStatus   `json:"raft"`
	Members []MemberInfo `json:"members"`
	// SnapshotAgeSeconds is the age of this node's newest raft snapshot,
	// -1 if it has none.
	SnapshotAgeSeconds float64 `json:"snapshot_age_seconds"`
}

// RaftStatus is this node's raft progress.
type RaftStatus struct {
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

// MemberInfo describes one member: known through gossip, through the raft
// configuration, or both.
type MemberInfo struct {
	Name          string `json:"name"`
	APIURL        string `json:"api_url"`
	GossipAddress string `json:"gossip_address"`
	RaftAddress   string `json:"raft_address"`
	// Status is alive, suspect, dead or left (gossip's view).
	Status string `json:"status"`
	// Suffrage is voter, nonvoter or none (raft's view).
	Suffrage string `json:"suffrage"`
	// ClockOffsetSeconds is the member's clock minus the leader's, as
	// this node measured them; absent when not measured.
	ClockOffsetSeconds *float64 `json:"clock_offset_seconds,omitempty"`
}

// Status returns the node's view of the cluster.
func (n *Node) Status() Status {
	_, leader := n.raft.LeaderWithID()
	st := Status{
		Self:               n.name,
		Leader:             string(leader),
		SnapshotAgeSeconds: n.snapshotAge(),
		Raft: RaftStatus{
			State:        n.raft.State().String(),
			Term:         n.raft.CurrentTerm(),
			LastIndex:    n.raft.LastIndex(),
			CommitIndex:  n.raft.CommitIndex(),
			AppliedIndex: n.raft.AppliedIndex(),
		},
	}
	byName := map[string]*MemberInfo{}
	for name, m := range n.gossip.snapshot() {
		byName[name] = &MemberInfo{
			Name: name, APIURL: m.meta.APIURL, GossipAddress: m.addr, RaftAddress: m.meta.RaftAddr,
			Status: memberStatus(m.state), Suffrage: "none",
		}
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			m := byName[string(s.ID)]
			if m == nil {
				m = &MemberInfo{Name: string(s.ID), Status: "dead"}
				byName[string(s.ID)] = m
			}
			if m.RaftAddress == "" {
				m.RaftAddress = string(s.Address)
			}
			m.Suffrage = "nonvoter"
			if s.Suffrage == raft.Voter {
				m.Suffrage = "voter"
			}
		}
	}
	offsets := n.probe.fromLeader(st.Leader)
	for name, m := range byName {
		if off, ok := offsets[name]; ok {
			sec := off.Seconds()
			m.ClockOffsetSeconds = &sec
		}
		st.Members = append(st.Members, *m)
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Name < st.Members[j].Name })
	return st
}

func memberStatus(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateLeft:
		return "left"
	}
	return "dead"
}
