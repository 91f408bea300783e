package httpapi

import (
	"net/http"
	"time"
)

// The cluster page (/cluster): this node's view of the members, raft's
// progress, snapshot age and quota usage. The page frame is in ui.go.

type uiClusterBody struct {
	Available bool
	Status    *ClusterStatus
	// Lag is commit index minus applied index.
	Lag      uint64
	Snapshot string
	APIPath  string
	// Usage of the cluster-wide quotas.
	Groups, Series       int
	MaxGroups, MaxSeries uint64
}

func (a *API) clusterPage(w http.ResponseWriter, _ *http.Request) {
	st := a.clusterStatus()
	body := &uiClusterBody{Available: st != nil, Status: st, Snapshot: snapshotAge(st), APIPath: a.linkPrefix() + "/api/v1/cluster",
		Groups: a.opts.Store.Len(), Series: a.opts.Store.Series(), MaxGroups: a.opts.MaxGroups, MaxSeries: a.opts.MaxTotalSeries}
	if st != nil && st.Raft.CommitIndex > st.Raft.AppliedIndex {
		body.Lag = st.Raft.CommitIndex - st.Raft.AppliedIndex
	}
	a.renderUI(w, "cluster", "Cluster", body)
}

// snapshotAge describes the age of the node's newest raft snapshot, or
// "n/a" without a cluster.
func snapshotAge(st *ClusterStatus) string {
	switch {
	case st == nil:
		return "n/a"
	case st.SnapshotAgeSeconds < 0:
		return "none yet"
	}
	return (time.Duration(st.SnapshotAgeSeconds) * time.Second).String() + " ago"
}
