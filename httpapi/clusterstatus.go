package httpapi

// ClusterStatus is a node's view of the cluster as /api/v1/cluster serves
// it and the cluster page shows it. httpapi declares it so that it depends
// on the cluster only through its own interfaces; cmd's wiring fills it
// from the cluster package (internal/clusterapi).
type ClusterStatus struct {
	Self    string          `json:"self"`
	Leader  string          `json:"leader"`
	Raft    RaftStatus      `json:"raft"`
	Members []ClusterMember `json:"members"`
	// SnapshotAgeSeconds is the age of this node's newest raft snapshot,
	// -1 if it has none.
	SnapshotAgeSeconds float64 `json:"snapshot_age_seconds"`
}

// RaftStatus is a node's raft progress.
type RaftStatus struct {
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

// ClusterMember describes one member.
type ClusterMember struct {
	Name          string `json:"name"`
	APIURL        string `json:"api_url"`
	GossipAddress string `json:"gossip_address"`
	RaftAddress   string `json:"raft_address"`
	// Status is alive, suspect, dead or left (gossip's view).
	Status string `json:"status"`
	// Suffrage is voter, nonvoter or none (raft's view).
	Suffrage string `json:"suffrage"`
	// ClockOffsetSeconds is the member's clock minus the leader's;
	// absent when not measured.
	ClockOffsetSeconds *float64 `json:"clock_offset_seconds,omitempty"`
}
