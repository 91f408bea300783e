package cluster

import (
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics are the node-local cluster self-metrics. None carries a job
// label, so they never mix with pushed metrics.
type nodeMetrics struct {
	n             *Node
	forwarded     *prometheus.CounterVec
	commitSeconds prometheus.Histogram
	leaderChanges prometheus.Counter

	stateDesc, termDesc, indexDesc, membersDesc, snapshotAgeDesc, leaderDesc *prometheus.Desc
}

func newNodeMetrics(n *Node, reg prometheus.Registerer) *nodeMetrics {
	m := &nodeMetrics{
		n: n,
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushgateway_cluster_forwarded_writes_total",
			Help: "Writes this node forwarded to the leader, by outcome.",
		}, []string{"result"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pushgateway_cluster_write_commit_seconds",
			Help:    "Time from submitting a write to its application on this node (quorum commit included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushgateway_cluster_leader_changes_total",
			Help: "Leader changes this node observed.",
		}),
		stateDesc:       prometheus.NewDesc("pushgateway_cluster_raft_state", "Raft state of this node (1 for the current state).", []string{"state"}, nil),
		termDesc:        prometheus.NewDesc("pushgateway_cluster_raft_term", "Current raft term.", nil, nil),
		indexDesc:       prometheus.NewDesc("pushgateway_cluster_raft_index", "Raft log indexes of this node.", []string{"kind"}, nil),
		membersDesc:     prometheus.NewDesc("pushgateway_cluster_members", "Members known through gossip, by status.", []string{"status"}, nil),
		snapshotAgeDesc: prometheus.NewDesc("pushgateway_cluster_snapshot_age_seconds", "Age of the newest local raft snapshot (-1 if none).", nil, nil),
		leaderDesc:      prometheus.NewDesc("pushgateway_cluster_is_leader", "1 if this node is the raft leader.", nil, nil),
	}
	for _, r := range []string{"ok", "unavailable", "unknown", "refused", "error"} {
		m.forwarded.WithLabelValues(r)
	}
	obs := make(chan raft.Observation, 16)
	n.raft.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			select {
			case <-obs:
				m.leaderChanges.Inc()
				n.signal()
			case <-n.stop:
				return
			}
		}
	}()
	if reg != nil {
		reg.MustRegister(m.forwarded, m.commitSeconds, m.leaderChanges, m)
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *nodeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.stateDesc, m.termDesc, m.indexDesc, m.membersDesc, m.snapshotAgeDesc, m.leaderDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *nodeMetrics) Collect(ch chan<- prometheus.Metric) {
	r := m.n.raft
	cur := r.State()
	for _, s := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		v := 0.0
		if s == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(m.stateDesc, prometheus.GaugeValue, v, strings.ToLower(s.String()))
	}
	isLeader := 0.0
	if cur == raft.Leader {
		isLeader = 1
	}
	ch <- prometheus.MustNewConstMetric(m.leaderDesc, prometheus.GaugeValue, isLeader)
	ch <- prometheus.MustNewConstMetric(m.termDesc, prometheus.GaugeValue, float64(r.CurrentTerm()))
	ch <- prometheus.MustNewConstMetric(m.indexDesc, prometheus.GaugeValue, float64(r.CommitIndex()), "commit")
	ch <- prometheus.MustNewConstMetric(m.indexDesc, prometheus.GaugeValue, float64(r.AppliedIndex()), "applied")
	ch <- prometheus.MustNewConstMetric(m.indexDesc, prometheus.GaugeValue, float64(r.LastIndex()), "last")
	counts := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, mi := range m.n.gossip.snapshot() {
		counts[memberStatus(mi.state)]++
	}
	for st, c := range counts {
		ch <- prometheus.MustNewConstMetric(m.membersDesc, prometheus.GaugeValue, float64(c), st)
	}
	age := -1.0
	if snaps, err := m.n.snaps.List(); err == nil && len(snaps) > 0 {
		// File snapshot IDs end with the creation time in Unix milliseconds.
		parts := strings.Split(snaps[0].ID, "-")
		if ms, err := strconv.ParseInt(parts[len(parts)-1], 10, 64); err == nil {
			age = time.Since(time.UnixMilli(ms)).Seconds()
		}
	}
	ch <- prometheus.MustNewConstMetric(m.snapshotAgeDesc, prometheus.GaugeValue, age)
}
