package cluster

import (
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// The stages of pushgateway_cluster_write_stage_seconds.
const (
	stageForward        = "forward"
	stageLeader         = "leader"
	stageApply          = "apply"
	stageLocalApplyWait = "local_apply_wait"
)

// observeStage records that a write spent the time since start in stage.
func (m *nodeMetrics) observeStage(stage string, start time.Time) {
	if m != nil {
		m.stageSeconds.WithLabelValues(stage).Observe(time.Since(start).Seconds())
	}
}

// Names and help strings of the cluster self-metrics.
const (
	forwardedName     = "pushgateway_cluster_forwarded_writes_total"
	forwardedHelp     = "Writes this node forwarded to the leader, by outcome."
	commitName        = "pushgateway_cluster_write_commit_seconds"
	commitHelp        = "Time from submitting a write to its acknowledgement: committed by a quorum and applied by the leader (with --cluster.stale-reads, also on this node)."
	stageName         = "pushgateway_cluster_write_stage_seconds"
	stageHelp         = "Stages of a write: forward (a follower's round trip to the leader), leader (append, fsync, replication, quorum commit and apply on the leader), apply (one entry in this node's state machine), local_apply_wait (a follower waiting for its own apply, --cluster.stale-reads)."
	leaderChangesName = "pushgateway_cluster_leader_changes_total"
	leaderChangesHelp = "Leader changes this node observed."
	stateName         = "pushgateway_cluster_raft_state"
	stateHelp         = "Raft state of this node (1 for the current state)."
	termName          = "pushgateway_cluster_raft_term"
	termHelp          = "Current raft term."
	indexName         = "pushgateway_cluster_raft_index"
	indexHelp         = "Raft log indexes of this node."
	membersName       = "pushgateway_cluster_members"
	membersHelp       = "Members known through gossip, by status."
	snapshotAgeName   = "pushgateway_cluster_snapshot_age_seconds"
	snapshotAgeHelp   = "Age of the newest local raft snapshot (-1 if none)."
	isLeaderName      = "pushgateway_cluster_is_leader"
	isLeaderHelp      = "1 if this node is the raft leader."
	clockOffsetName   = "pushgateway_cluster_clock_offset_seconds"
	clockOffsetHelp   = "Offset of each member's clock from the leader's, as measured by this node (member minus leader)."
	freeBytesName     = "pushgateway_storage_free_bytes"
	freeBytesHelp     = "Free space of the filesystem of --storage.path."
	minFreeBytesName  = "pushgateway_storage_min_free_bytes"
	minFreeBytesHelp  = "Free space below which writes are refused (--storage.min-free-bytes; 0: no guard)."
	writesRefusedName = "pushgateway_storage_writes_refused"
	writesRefusedHelp = "1 while pushes are refused with 507 because this node's or a member's storage is below its reserve."
	readIndexName     = "pushgateway_cluster_read_index_seconds"
	readIndexHelp     = "Time to learn a read index from the leader, per round (one round serves every read that joined it)."
	readsRefusedName  = "pushgateway_cluster_reads_refused_total"
	readsRefusedHelp  = "Reads of pushed metrics this node answered with 503 because it could not make them current (no read index, or not applied in time)."
)

// SelfMetricFamilies lists the cluster self-metrics with their types, so the
// state machine can treat them like the gateway's other own families.
func SelfMetricFamilies() map[string]fsm.ReservedFamily {
	gauge, counter := dto.MetricType_GAUGE, dto.MetricType_COUNTER
	return map[string]fsm.ReservedFamily{
		forwardedName:     {Type: counter, Help: forwardedHelp},
		commitName:        {Type: dto.MetricType_HISTOGRAM, Help: commitHelp},
		leaderChangesName: {Type: counter, Help: leaderChangesHelp},
		stateName:         {Type: gauge, Help: stateHelp},
		termName:          {Type: gauge, Help: termHelp},
		indexName:         {Type: gauge, Help: indexHelp},
		membersName:       {Type: gauge, Help: membersHelp},
		snapshotAgeName:   {Type: gauge, Help: snapshotAgeHelp},
		isLeaderName:      {Type: gauge, Help: isLeaderHelp},
		clockOffsetName:   {Type: gauge, Help: clockOffsetHelp},
		freeBytesName:     {Type: gauge, Help: freeBytesHelp},
		minFreeBytesName:  {Type: gauge, Help: minFreeBytesHelp},
		writesRefusedName: {Type: gauge, Help: writesRefusedHelp},
		readIndexName:     {Type: dto.MetricType_HISTOGRAM, Help: readIndexHelp},
		readsRefusedName:  {Type: counter, Help: readsRefusedHelp},
	}
}

// nodeMetrics are the node-local cluster self-metrics. None carries a job
// label, so they never mix with pushed metrics.
type nodeMetrics struct {
	n             *Node
	forwarded     *prometheus.CounterVec
	commitSeconds prometheus.Histogram
	stageSeconds  *prometheus.HistogramVec
	leaderChanges prometheus.Counter
	// readIndexSeconds and readBarrierFailures watch reads (readindex.go).
	readIndexSeconds    prometheus.Histogram
	readBarrierFailures prometheus.Counter

	stateDesc, termDesc, indexDesc, membersDesc, snapshotAgeDesc, leaderDesc, clockOffsetDesc *prometheus.Desc
	freeBytesDesc, minFreeBytesDesc, writesRefusedDesc                                        *prometheus.Desc
}

func newNodeMetrics(n *Node, reg prometheus.Registerer) *nodeMetrics {
	m := &nodeMetrics{
		n:                   n,
		forwarded:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: forwardedName, Help: forwardedHelp}, []string{"result"}),
		commitSeconds:       prometheus.NewHistogram(prometheus.HistogramOpts{Name: commitName, Help: commitHelp, Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		stageSeconds:        prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: stageName, Help: stageHelp, Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18)}, []string{"stage"}),
		leaderChanges:       prometheus.NewCounter(prometheus.CounterOpts{Name: leaderChangesName, Help: leaderChangesHelp}),
		readIndexSeconds:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: readIndexName, Help: readIndexHelp, Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		readBarrierFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: readsRefusedName, Help: readsRefusedHelp}),
		stateDesc:           prometheus.NewDesc(stateName, stateHelp, []string{"state"}, nil),
		termDesc:            prometheus.NewDesc(termName, termHelp, nil, nil),
		indexDesc:           prometheus.NewDesc(indexName, indexHelp, []string{"kind"}, nil),
		membersDesc:         prometheus.NewDesc(membersName, membersHelp, []string{"status"}, nil),
		snapshotAgeDesc:     prometheus.NewDesc(snapshotAgeName, snapshotAgeHelp, nil, nil),
		leaderDesc:          prometheus.NewDesc(isLeaderName, isLeaderHelp, nil, nil),
		clockOffsetDesc:     prometheus.NewDesc(clockOffsetName, clockOffsetHelp, []string{"member"}, nil),
		freeBytesDesc:       prometheus.NewDesc(freeBytesName, freeBytesHelp, nil, nil),
		minFreeBytesDesc:    prometheus.NewDesc(minFreeBytesName, minFreeBytesHelp, nil, nil),
		writesRefusedDesc:   prometheus.NewDesc(writesRefusedName, writesRefusedHelp, nil, nil),
	}
	for _, r := range []string{"ok", "quota", "unavailable", "unknown", "refused", "error"} {
		m.forwarded.WithLabelValues(r)
	}
	for _, s := range []string{stageForward, stageLeader, stageApply, stageLocalApplyWait} {
		m.stageSeconds.WithLabelValues(s)
	}
	obs := make(chan raft.Observation, 16)
	n.raft.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		var prevLeader raft.ServerID
		for {
			select {
			case o := <-obs:
				if lo, ok := o.Data.(raft.LeaderObservation); ok {
					if lo.LeaderID == "" && prevLeader == raft.ServerID(n.name) {
						// This node stepped down (a leadership
						// transfer): an election follows.
						n.leaderLostAt.Store(time.Now().UnixNano())
					}
					prevLeader = lo.LeaderID
				}
				m.leaderChanges.Inc()
				n.signal()
			case <-n.stop:
				return
			}
		}
	}()
	if reg != nil {
		reg.MustRegister(m.forwarded, m.commitSeconds, m.stageSeconds, m.leaderChanges, m.readIndexSeconds, m.readBarrierFailures, m)
	}
	return m
}

// snapshotAge returns the age in seconds of the newest local raft
// snapshot, -1 if there is none.
func (n *Node) snapshotAge() float64 {
	snaps, err := n.snaps.List()
	if err != nil || len(snaps) == 0 {
		return -1
	}
	// File snapshot IDs end with the creation time in Unix milliseconds.
	parts := strings.Split(snaps[0].ID, "-")
	ms, err := strconv.ParseInt(parts[len(parts)-1], 10, 64)
	if err != nil {
		return -1
	}
	return time.Since(time.UnixMilli(ms)).Seconds()
}

// Describe implements prometheus.Collector.
func (m *nodeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.stateDesc, m.termDesc, m.indexDesc, m.membersDesc, m.snapshotAgeDesc, m.leaderDesc, m.clockOffsetDesc,
		m.freeBytesDesc, m.minFreeBytesDesc, m.writesRefusedDesc} {
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
	ch <- prometheus.MustNewConstMetric(m.snapshotAgeDesc, prometheus.GaugeValue, m.n.snapshotAge())
	free, _ := m.n.disk.status()
	ch <- prometheus.MustNewConstMetric(m.freeBytesDesc, prometheus.GaugeValue, float64(free))
	ch <- prometheus.MustNewConstMetric(m.minFreeBytesDesc, prometheus.GaugeValue, float64(m.n.disk.reserve))
	refused := 0.0
	if m.n.WriteStatus() != nil {
		refused = 1
	}
	ch <- prometheus.MustNewConstMetric(m.writesRefusedDesc, prometheus.GaugeValue, refused)
	_, leader := r.LeaderWithID()
	for member, off := range m.n.probe.fromLeader(string(leader)) {
		ch <- prometheus.MustNewConstMetric(m.clockOffsetDesc, prometheus.GaugeValue, off.Seconds(), member)
	}
}
