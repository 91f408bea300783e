package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// Node is one member of the cluster: raft, memberlist and the forwarding
// of writes to the leader.
type Node struct {
	cfg       Config
	name      string
	raftAddr  string
	logger    *slog.Logger
	state     *fsm.FSM
	raft      *raft.Raft
	fsm       *raftFSM
	mux       *muxListener
	transport *raft.NetworkTransport
	stores    *walStore
	snaps     *snapshotStore
	dialer    *dialer
	rpc       *rpcClient
	gossip    *gossip
	metrics   *nodeMetrics
	// contactTimeout is how long a follower may go without hearing from
	// the leader before it stops trusting that leader (raft's heartbeat
	// timeout): writes wait instead of being forwarded into a partition.
	contactTimeout time.Duration

	// leaderLostAt is when this node last stepped down as the leader
	// (Unix ns): an election follows, and for contactTimeout the node
	// stays ready (see Ready).
	leaderLostAt atomic.Int64

	ready atomic.Bool
	// recovering is set while this node, whose storage was found corrupt
	// at start, copies the state from its peers (see prepareRaftStorage).
	recovering atomic.Bool
	// removed holds members an operator removed while they were running.
	removedMu sync.Mutex
	removed   map[string]struct{}
	// removedByOperator is set once an operator's removal of this node
	// was proposed (noticeRemoval): its status says so, and no leader adds
	// it back until it restarts.
	removedByOperator atomic.Bool
	joined            chan struct{} // closed once gossip reached another member (at once without peers)
	alone             atomic.Bool   // every configured peer is this node itself (selfpeer.go)
	// restartTimeouts are raft's configured timeouts while the node runs
	// with shorter ones for its first election after a restart (nil
	// otherwise; restartelection.go).
	restartTimeouts atomic.Pointer[raftTimeouts]
	// reloadMu serializes changes of raft's reloadable configuration
	// (reloadRaft).
	reloadMu  sync.Mutex
	lastStamp atomic.Int64  // the latest time this node stamped into a command as leader
	probe     *memberProbe  // the members' clock offsets and storage flags (clock.go)
	disk      *diskGuard    // free space of the storage path (diskspace.go)
	features  featureGate   // what every member understands (features.go)
	reads     *readRounds   // reads waiting for the next read index (readindex.go)
	events    chan struct{} // wakes the bootstrapper
	changes   chan struct{} // wakes the leader's reconciler
	stop      chan struct{}
	stopped   sync.Once
	wg        sync.WaitGroup
}

// Start opens the stores under cfg.DataDir, starts raft and memberlist,
// joins the peers and, when the cluster has never been bootstrapped,
// bootstraps it once the expected number of voters are present.
func Start(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.BootstrapExpect <= 0 {
		cfg.BootstrapExpect = 1
	}
	if cfg.MaxVoters <= 0 {
		cfg.MaxVoters = 5
	}
	if cfg.ReapTimeout <= 0 {
		cfg.ReapTimeout = 30 * time.Minute
	}
	if cfg.GossipListen == "" {
		cfg.GossipListen = "127.0.0.1:0"
	}
	if (cfg.TLSServer == nil) != (cfg.TLSClient == nil) {
		return nil, errors.New("cluster TLS needs both a server and a client configuration")
	}
	for i, k := range cfg.GossipKeys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return nil, fmt.Errorf("gossip key %d is %d bytes long; it must be 16, 24 or 32 bytes", i+1, l)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create storage path: %w", err)
	}
	name, err := loadOrPersistName(cfg.DataDir, cfg.NodeName)
	if err != nil {
		return nil, err
	}
	d := &dialer{tls: cfg.TLSClient}
	n := &Node{
		cfg: cfg, name: name, logger: cfg.Logger, state: cfg.State, fsm: newRaftFSM(cfg.State),
		dialer: d, removed: map[string]struct{}{}, rpc: newRPCClient(d), joined: make(chan struct{}), events: make(chan struct{}, 1), changes: make(chan struct{}, 1), stop: make(chan struct{}),
		probe: &memberProbe{}, reads: newReadRounds(),
	}
	n.fsm.logger = n.logger
	n.disk = &diskGuard{n: n, path: cfg.DataDir, reserve: cfg.MinFreeBytes}
	prepared, err := prepareRaftStorage(cfg.DataDir, n.logger)
	if err != nil {
		return nil, err
	}
	n.recovering.Store(prepared.recovering)
	if err := n.startRaft(prepared); err != nil {
		n.closeAll()
		return nil, err
	}
	existing := n.hasState()
	if n.gossip, err = startGossip(n, existing); err != nil {
		n.closeAll()
		return nil, err
	}
	n.metrics = newNodeMetrics(n, cfg.Registerer)
	n.fsm.metrics.Store(n.metrics)

	n.wg.Add(8)
	go n.runSnapshotCadence()
	go n.runReadRounds()
	go n.runMemberProbe()
	go n.serveCommands()
	go n.runJoin()
	go n.runLeaderLoop()
	go n.runReadiness()
	go n.runExpiry() // groups may carry their own expiry
	switch {
	case prepared.recovering:
		n.logger.Warn("recovering: waiting for the leader to copy the state to this node", "node", name, "raft_address", n.raftAddr)
	case !existing:
		n.wg.Add(1)
		go n.runBootstrap()
	default:
		n.logger.Info("restarting from existing raft state", "node", name, "raft_address", n.raftAddr)
	}
	return n, nil
}

// startRaft opens the stores and starts raft on the storage
// prepareRaftStorage checked; prepared.stable holds the stable-store
// values found in raft.db (see prepareRaftStorage).
func (n *Node) startRaft(prepared preparedStorage) error {
	stable := prepared.stable
	hlog := newHCLogger(n.logger)
	ln, err := net.Listen("tcp", n.cfg.RaftListen)
	if err != nil {
		return fmt.Errorf("raft listen on %s: %w", n.cfg.RaftListen, err)
	}
	adv, err := advertiseAddr(n.cfg.RaftAdvertise, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	n.raftAddr = adv.String()
	n.mux = newMuxListener(ln, adv, n.cfg.TLSServer, n.logger)
	n.transport = raft.NewNetworkTransportWithLogger(&raftLayer{m: n.mux, d: n.dialer}, 5, 10*time.Second, hlog.Named("transport"))
	if n.cfg.TLSServer == nil && !isLoopback(ln.Addr()) {
		n.logger.Warn("the raft port is not protected: anyone who reaches it can join raft and inject writes; keep it on a private network or set --cluster.tls-config-file", "raft_listen_address", ln.Addr().String())
	}

	raftDir := filepath.Join(n.cfg.DataDir, raftSubdir)
	if err := os.MkdirAll(raftDir, 0o750); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	if n.stores, err = openWAL(filepath.Join(raftDir, walSubdir), hlog.Named("wal")); err != nil {
		return err
	}
	n.stores.keepTail(prepared.tail)
	if n.snaps, err = newSnapshotStore(raftDir, 2, hlog.Named("snapshots"), prepared.verified); err != nil {
		return err
	}
	rc := raft.DefaultConfig()
	// Followers learn the commit index from the next AppendEntries; a
	// short commit timeout sends it soon, so a write forwarded by a
	// follower (which answers only after applying it) and the other nodes'
	// view of it are not held back by up to raft's default 50 ms. 2 ms
	// (measured against 5 ms and 1 ms): convergence p99 11 ms instead of
	// 15, same push throughput, a little more idle CPU.
	rc.CommitTimeout = 2 * time.Millisecond
	// Larger batches: concurrent writes share one log append and fsync.
	rc.MaxAppendEntries = 256
	// See snapshotcadence.go: both follow the store once the node is ready.
	rc.SnapshotInterval, rc.SnapshotThreshold = n.raftSnapshotChecks(0), startSnapshotThreshold
	if n.cfg.LocalNetwork {
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.ElectionTimeout = 200 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
	}
	if n.cfg.tuneRaft != nil {
		n.cfg.tuneRaft(rc)
	}
	n.contactTimeout = rc.HeartbeatTimeout
	rc.LocalID = raft.ServerID(n.name)
	rc.Logger = hlog
	rc.BatchApplyCh = true
	if err := raiseStable(n.stores, stable); err != nil {
		return fmt.Errorf("raise the raft term to the vote record's: %w", err)
	}
	mirrored := newMirroredStable(n.stores, filepath.Join(raftDir, voteRecordFile), stable)
	trans := newRaftTransport(n.transport, &n.recovering, n.stop)
	n.fsm.starting.Store(true)
	n.raft, err = raft.NewRaft(rc, n.fsm, n.stores, mirrored, n.snaps, trans)
	n.fsm.starting.Store(false)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.electSoonAfterRestart(rc.LeaderLeaseTimeout)
	return nil
}

// hasState reports whether this node belongs to a bootstrapped cluster:
// it has a raft configuration (from its own log, a snapshot, or a leader).
func (n *Node) hasState() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return len(f.Configuration().Servers) > 0
}

// Name returns the node's name, its raft server ID and memberlist name.
func (n *Node) Name() string { return n.name }

// RaftAddress returns the advertised raft address.
func (n *Node) RaftAddress() string { return n.raftAddr }

// GossipAddress returns the advertised memberlist address.
func (n *Node) GossipAddress() string { return n.gossip.advertise }

// signal wakes the loops that react to membership changes; never blocks.
func (n *Node) signal() {
	for _, ch := range []chan struct{}{n.events, n.changes} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// sleep waits for d or until the node stops; it reports false on stop.
func (n *Node) sleep(d time.Duration) bool {
	select {
	case <-n.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// runReadiness marks the node ready once it knows a leader and has applied
// what the leader had committed at that moment, and then records that this
// node holds cluster state (for other nodes' bootstrap decisions).
func (n *Node) runReadiness() {
	defer n.wg.Done()
	lastWarn := time.Now()
	for {
		if err := n.catchUp(); err != nil {
			n.logger.Debug("not ready yet", "reason", err)
			if n.recovering.Load() && time.Since(lastWarn) > 20*n.contactTimeout {
				lastWarn = time.Now()
				n.logger.Warn("still recovering: no leader has copied the state to this node yet (a node without peers must be restored from a backup, see the README)", "reason", err)
			}
			if !n.sleep(50 * time.Millisecond) {
				return
			}
			continue
		}
		if n.recovering.Load() {
			if err := os.Remove(filepath.Join(n.cfg.DataDir, raftSubdir, recoveringMarker)); err != nil && !errors.Is(err, os.ErrNotExist) {
				n.logger.Error("remove recovery marker", "err", err)
			}
			n.recovering.Store(false)
			n.logger.Info("recovered the raft state from the peers; this node votes again", "node", n.name, "applied_index", n.raft.AppliedIndex())
		}
		n.restoreTimeouts()
		n.ready.Store(true)
		n.stores.dropTail() // replayed: raft reads what it needs from the store now
		n.logger.Info("node is ready", "node", n.name, "voters", n.voterCount(), "leader", n.leaderName(),
			"storage_path", n.cfg.DataDir, "raft_address", n.raftAddr, "gossip_address", n.gossip.advertise, "applied_index", n.raft.AppliedIndex())
		n.gossip.setHasState()
		return
	}
}

// catchUp waits until this node has applied what the leader committed.
func (n *Node) catchUp() error {
	addr, id := n.raft.LeaderWithID()
	if addr == "" {
		return errors.New("no raft leader known")
	}
	if id == raft.ServerID(n.name) {
		return n.raft.Barrier(n.cfg.WriteTimeout).Error()
	}
	st, err := n.statusOf(string(addr), time.Now().Add(n.cfg.WriteTimeout))
	if err != nil {
		return fmt.Errorf("ask leader for its commit index: %w", err)
	}
	deadline := time.Now().Add(n.cfg.WriteTimeout)
	for n.raft.AppliedIndex() < st.commitIndex {
		if time.Now().After(deadline) {
			return fmt.Errorf("applied %d of the leader's %d committed entries", n.raft.AppliedIndex(), st.commitIndex)
		}
		if !n.sleep(10 * time.Millisecond) {
			return errors.New("stopping")
		}
	}
	return nil
}

// leaderContact returns the leader's raft address and ID if this node is
// the leader or has heard from it within contactTimeout; otherwise a reason.
func (n *Node) leaderContact() (raft.ServerAddress, raft.ServerID, string) {
	addr, id := n.raft.LeaderWithID()
	if addr == "" {
		return "", "", "no raft leader known"
	}
	if id != raft.ServerID(n.name) {
		if since := time.Since(n.raft.LastContact()); since > n.contactTimeout {
			return "", "", fmt.Sprintf("no contact with the leader %s for %s", id, since.Round(time.Millisecond))
		}
	}
	return addr, id, ""
}

// inElection reports whether this node knew a leader until less than
// contactTimeout ago: it heard from one, or was the leader, that recently.
func (n *Node) inElection() bool {
	if n.raft.State() == raft.Shutdown {
		return false
	}
	if time.Since(n.raft.LastContact()) <= n.contactTimeout {
		return true
	}
	lost := n.leaderLostAt.Load()
	return lost != 0 && time.Since(time.Unix(0, lost)) <= n.contactTimeout
}

// Ready returns nil when the node knows the leader and has caught up with
// the log, or an error saying what it waits for.
//
// An election does not make a node unready: right after a leader stepped
// down or stopped (a graceful stop hands leadership over), a node that had
// contact with a leader within contactTimeout (raft's heartbeat timeout)
// stays ready while no leader is known. It serves what it applied, as it
// would a moment earlier; writes wait for the new leader. So a rolling
// restart makes only the restarted node unready, and a node cut off from
// the others still turns unready after contactTimeout.
func (n *Node) Ready() error {
	if _, _, reason := n.leaderContact(); reason != "" {
		if addr, _ := n.raft.LeaderWithID(); addr != "" || !n.inElection() {
			return errors.New(reason)
		}
	}
	if !n.ready.Load() {
		return errors.New("catching up with the raft log")
	}
	return nil
}

// leaderName is the raft leader's ID as this node knows it ("" if none).
func (n *Node) leaderName() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// Shutdown leaves the cluster gracefully: a leader hands leadership to
// another voter first, the node leaves memberlist (it stays in the raft
// configuration, so a restart rejoins with its data), then raft stops.
func (n *Node) Shutdown() error {
	var err error
	n.stopped.Do(func() {
		if n.raft.State() == raft.Leader && n.isVoter() && n.voterCount() > 1 {
			n.handOverLeadership()
		}
		if n.gossip != nil {
			n.gossip.leave()
		}
		close(n.stop)
		if serr := n.raft.Shutdown().Error(); serr != nil {
			err = fmt.Errorf("shut down raft: %w", serr)
		}
		n.wg.Wait()
		n.closeAll()
	})
	return err
}

// shutdownTransferTimeout bounds how long Shutdown waits for a leadership
// transfer: raft's transfer can wait forever, e.g. on a leader that was
// just removed from the configuration, and a stopping node must stop.
const shutdownTransferTimeout = 10 * time.Second

// handOverLeadership asks raft to transfer leadership and waits for it at
// most shutdownTransferTimeout.
func (n *Node) handOverLeadership() {
	done := make(chan error, 1)
	go func() { done <- n.raft.LeadershipTransfer().Error() }()
	select {
	case err := <-done:
		if err != nil {
			n.logger.Warn("leadership transfer before shutdown failed", "err", err)
			return
		}
		n.logger.Info("transferred leadership before shutdown")
	case <-time.After(shutdownTransferTimeout):
		n.logger.Warn("leadership transfer before shutdown did not finish; stopping anyway", "waited", shutdownTransferTimeout)
	}
}

// isVoter reports whether this node is a voter in its latest raft
// configuration. A leader that has just removed itself is not: it must not
// try to hand over leadership, it is already leaving.
func (n *Node) isVoter() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && isVoter(f.Configuration(), raft.ServerID(n.name))
}

func (n *Node) voterCount() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}

func (n *Node) closeAll() {
	if n.rpc != nil {
		n.rpc.close()
	}
	if n.transport != nil {
		_ = n.transport.Close()
	}
	if n.mux != nil {
		_ = n.mux.close()
	}
	if n.stores != nil {
		if err := n.stores.Close(); err != nil {
			n.logger.Error("close raft store", "err", err)
		}
	}
}

// Snapshot asks raft to take a snapshot now.
func (n *Node) Snapshot() error {
	return n.raft.Snapshot().Error()
}
