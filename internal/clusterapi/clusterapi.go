// Package clusterapi wires a cluster.Node to the HTTP API: it is the one
// place that knows both, so that httpapi imports nothing of cluster.
package clusterapi

import (
	"context"

	"github.com/pushgateway-cluster/pushgateway-cluster/cluster"
	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

// Adapt returns n as the httpapi.Cluster the API reports and operates on.
func Adapt(n *cluster.Node) httpapi.Cluster { return node{n} }

type node struct{ n *cluster.Node }

// Status converts the node's view of the cluster.
func (a node) Status() httpapi.ClusterStatus {
	st := a.n.Status()
	out := httpapi.ClusterStatus{
		Self: st.Self, Leader: st.Leader,
		Raft: httpapi.RaftStatus{State: st.Raft.State, Term: st.Raft.Term, LastIndex: st.Raft.LastIndex,
			CommitIndex: st.Raft.CommitIndex, AppliedIndex: st.Raft.AppliedIndex},
		Members:            make([]httpapi.ClusterMember, 0, len(st.Members)),
		SnapshotAgeSeconds: st.SnapshotAgeSeconds,
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, httpapi.ClusterMember{
			Name: m.Name, APIURL: m.APIURL, GossipAddress: m.GossipAddress, RaftAddress: m.RaftAddress,
			Status: m.Status, Suffrage: m.Suffrage, ClockOffsetSeconds: m.ClockOffsetSeconds,
		})
	}
	return out
}

func (a node) RemoveMember(ctx context.Context, name string) error {
	return a.n.RemoveMember(ctx, name)
}

func (a node) TransferLeadership(ctx context.Context, to string) (string, error) {
	return a.n.TransferLeadership(ctx, to)
}
