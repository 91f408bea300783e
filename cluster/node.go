package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// Config configures a Node.
type Config struct {
	// DataDir holds the raft log, the stable store, snapshots and the
	// persisted node name (--storage.path).
	DataDir string
	// NodeName is the wanted node name; empty means the persisted one, or
	// the hostname on first start.
	NodeName string
	// RaftListen is the address raft and forwarded commands listen on.
	RaftListen string
	// RaftAdvertise is the address other nodes reach RaftListen at; empty
	// means derived (never 0.0.0.0).
	RaftAdvertise string
	// GossipListen is memberlist's address (TCP and UDP).
	GossipListen string
	// GossipAdvertise is the gossip address other nodes reach; empty
	// means derived (never 0.0.0.0).
	GossipAdvertise string
	// Peers are gossip addresses (host:port) of members to join; a DNS name
	// with several addresses joins them all.
	Peers []string
	// BootstrapExpect is how many voters must be seen before the first
	// bootstrap (default 1).
	BootstrapExpect int
	// MaxVoters is the number of voters the leader keeps; further nodes
	// join as non-voters (default 5).
	MaxVoters int
	// ReapTimeout is how long a failed or departed voter stays in the
	// configuration before the leader removes it, quorum permitting.
	ReapTimeout time.Duration
	// WriteTimeout bounds how long a write may wait for a leader and a
	// commit (--cluster.write-timeout).
	WriteTimeout time.Duration
	// ExpireAfter turns on expiry (--push.expire-after): the leader
	// removes groups not pushed for this long. 0 (the default) keeps
	// groups forever.
	ExpireAfter time.Duration
	// APIURL is the URL of this node's HTTP API, shown to other members.
	// Empty means derived from APIListen and the gossip advertise address.
	APIURL string
	// APIListen is the HTTP API's listen address (--web.listen-address).
	APIListen string
	// APITLS says the API serves HTTPS (--web.config.file with TLS), for
	// the derived APIURL.
	APITLS bool
	// State is the state machine the log is applied to.
	State *fsm.FSM
	// Logger receives the node's logs, raft's and memberlist's included.
	Logger *slog.Logger
	// Registerer receives the cluster self-metrics; may be nil.
	Registerer prometheus.Registerer
	// MaxGroups and MaxTotalSeries are the cluster-wide quotas
	// (--push.max-groups, --push.max-total-series; 0: none). The leader
	// stamps its own into every command it appends, so all nodes judge a
	// push by the same numbers.
	MaxGroups, MaxTotalSeries uint64
	// MinFreeBytes is the free space of DataDir's filesystem below which
	// writes that grow the state are refused (--storage.min-free-bytes;
	// 0: no guard). See diskspace.go.
	MinFreeBytes uint64
	// Now is the node's wall clock; nil means time.Now. It is the one
	// clock for everything the leader puts into the log (push times, the
	// expiry cutoff) and what other nodes compare theirs with; tests shift
	// it (--debug.clock-shift) to play a node with a skewed clock.
	Now func() time.Time
	// LocalNetwork shortens raft's and memberlist's timers for a loopback
	// network (tests, a cluster on one machine).
	LocalNetwork bool
	// GossipKeys turn on memberlist's encryption (--cluster.gossip-key-file):
	// the first key encrypts, all of them decrypt (rotation). Each is 16,
	// 24 or 32 bytes. Empty: gossip is not encrypted.
	GossipKeys [][]byte
	// TLSServer and TLSClient turn on TLS for every connection on the raft
	// port, raft's and forwarded commands' alike (--cluster.tls-config-file):
	// TLSServer for the listener (it should require and verify client
	// certificates), TLSClient for the connections this node opens. Both
	// or neither must be set.
	TLSServer *tls.Config
	TLSClient *tls.Config
}

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
	stores    *raftboltdb.BoltStore
	snaps     *raft.FileSnapshotStore
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
	joined    chan struct{} // closed once gossip reached another member (at once without peers)
	alone     atomic.Bool   // every configured peer is this node itself (selfpeer.go)
	lastStamp atomic.Int64  // the latest time this node stamped into a command as leader
	clock     *clockProbe   // offsets of the members' clocks (clock.go)
	disk      *diskGuard    // free space of the storage path (diskspace.go)
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
		clock: &clockProbe{},
	}
	n.disk = &diskGuard{n: n, path: cfg.DataDir, reserve: cfg.MinFreeBytes}
	recovering, stable, err := prepareRaftStorage(cfg.DataDir, n.logger)
	if err != nil {
		return nil, err
	}
	n.recovering.Store(recovering)
	if err := n.startRaft(stable); err != nil {
		n.closeAll()
		return nil, err
	}
	existing := n.hasState()
	if n.gossip, err = startGossip(n, existing); err != nil {
		n.closeAll()
		return nil, err
	}
	n.metrics = newNodeMetrics(n, cfg.Registerer)

	n.wg.Add(5)
	go n.runClockProbe()
	go n.serveCommands()
	go n.runJoin()
	go n.runLeaderLoop()
	go n.runReadiness()
	if cfg.ExpireAfter > 0 {
		n.wg.Add(1)
		go n.runExpiry()
	}
	switch {
	case recovering:
		n.logger.Warn("recovering: waiting for the leader to copy the state to this node", "node", name, "raft_address", n.raftAddr)
	case !existing:
		n.wg.Add(1)
		go n.runBootstrap()
	default:
		n.logger.Info("restarting from existing raft state", "node", name, "raft_address", n.raftAddr)
	}
	return n, nil
}

// startRaft opens the stores and starts raft; stable holds the stable-store
// values found in raft.db (see prepareRaftStorage).
func (n *Node) startRaft(stable map[string][]byte) error {
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
	if n.stores, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, "raft.db")}); err != nil {
		return fmt.Errorf("open raft log store: %w", err)
	}
	if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hlog.Named("snapshots")); err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
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
	if n.cfg.LocalNetwork {
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.ElectionTimeout = 200 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
	}
	n.contactTimeout = rc.HeartbeatTimeout
	rc.LocalID = raft.ServerID(n.name)
	rc.Logger = hlog
	rc.BatchApplyCh = true
	mirrored := newMirroredStable(n.stores, filepath.Join(raftDir, voteRecordFile), stable)
	trans := newRaftTransport(n.transport, &n.recovering, n.stop)
	if n.raft, err = raft.NewRaft(rc, n.fsm, n.stores, mirrored, n.snaps, trans); err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
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
		n.ready.Store(true)
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
	reply, err := n.rpc.call(string(addr), time.Now().Add(n.cfg.WriteTimeout), []byte{methodStatus})
	if err != nil {
		return fmt.Errorf("ask leader for its commit index: %w", err)
	}
	st, err := decodeStatusReply(reply)
	if err != nil {
		return err
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

// Submit proposes a command, from any node, and waits until it is
// committed and applied on this node. The result carries the state
// machine's verdict. Errors are *UnavailableError (certainly not applied)
// or *OutcomeUnknownError (may still be applied), or wrap
// fsm.ErrInvalidCommand for a command that is not well-formed (checked
// here and again by the leader; nothing was proposed).
func (n *Node) Submit(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	if err := fsm.Validate(cmd); err != nil {
		return nil, err
	}
	grows := growsState(cmd.Op)
	if grows {
		if err := n.disk.check(); err != nil {
			return nil, err
		}
	}
	data, err := cmd.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.WriteTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	start := time.Now()

	// Commands are idempotent, so an attempt whose outcome is unknown (the
	// connection to the leader broke, the leader lost leadership after
	// appending) is simply tried again until the write timeout. Only if
	// no attempt is confirmed by then, the answer is "unknown" (504) when
	// one of them may have been appended, "unavailable" (503) otherwise.
	var reply applyReply
	lastReason := "no raft leader known"
	maybeApplied := false
	failure := func() error {
		if maybeApplied {
			return &OutcomeUnknownError{Reason: fmt.Sprintf("%s; no attempt confirmed within %s", lastReason, n.cfg.WriteTimeout)}
		}
		return &UnavailableError{Reason: fmt.Sprintf("%s within %s", lastReason, n.cfg.WriteTimeout)}
	}
	for {
		if ctx.Err() != nil {
			return nil, failure()
		}
		addr, id, reason := n.leaderContact()
		switch {
		case reason != "":
			lastReason = reason
			reply = applyReply{code: codeUnavailable}
		case id == raft.ServerID(n.name):
			reply = n.applyAsLeader(data, time.Until(deadline), grows)
		default:
			reply, err = n.forward(string(addr), data, deadline)
			switch {
			case err == nil:
				n.metrics.forwarded.WithLabelValues(replyCodeName(reply.code)).Inc()
			case errors.Is(err, errNotSent):
				n.metrics.forwarded.WithLabelValues("error").Inc()
				reply = applyReply{code: codeUnavailable, message: "could not reach the leader: " + err.Error()}
			default:
				n.metrics.forwarded.WithLabelValues("error").Inc()
				reply = applyReply{code: codeUnknown, message: "lost contact with the leader: " + err.Error()}
			}
		}
		switch reply.code {
		case codeOK, codeQuota:
		case codeBadRequest:
			return nil, fmt.Errorf("%w: the leader refused it: %s", fsm.ErrInvalidCommand, reply.message)
		case codeInsufficientStorage:
			return nil, &InsufficientStorageError{Reason: reply.message}
		default:
			if reply.code == codeUnknown {
				maybeApplied = true
			}
			if reply.message != "" {
				lastReason = reply.message
			}
			if !n.sleep(10 * time.Millisecond) {
				lastReason = "node is shutting down"
				return nil, failure()
			}
			continue
		}
		break
	}
	ch, giveUp := n.fsm.waitCh(reply.index)
	defer giveUp()
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, &OutcomeUnknownError{Reason: fmt.Sprintf("committed at index %d but not applied on this node in time", reply.index)}
	}
	n.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	res := &fsm.Result{Index: reply.index}
	switch {
	case reply.code == codeQuota:
		res.Err = &fsm.QuotaError{Msg: reply.message}
	case reply.message != "":
		res.Err = &fsm.ConsistencyError{Msg: reply.message}
	}
	return res, nil
}

// forward sends an encoded command to the leader's command port.
func (n *Node) forward(leaderAddr string, data []byte, deadline time.Time) (applyReply, error) {
	req := make([]byte, 0, len(data)+12)
	req = append(req, methodApply)
	req = appendUvarint(req, uint64(max(time.Until(deadline).Milliseconds(), 1)))
	req = append(req, data...)
	b, err := n.rpc.call(leaderAddr, deadline, req)
	if err != nil {
		return applyReply{}, err
	}
	return decodeApplyReply(b)
}

// applyAsLeader appends an encoded command to the log and waits for its
// commit and local application.
//
// A command that grows the state is refused while this node's storage, or
// a member's as last reported, is below its free-space reserve.
func (n *Node) applyAsLeader(data []byte, timeout time.Duration, grows bool) applyReply {
	if n.raft.State() != raft.Leader {
		return applyReply{code: codeUnavailable, message: "this node is not the leader"}
	}
	if timeout <= 0 {
		return applyReply{code: codeUnavailable, message: "write timeout exhausted"}
	}
	if grows {
		if err := n.WriteStatus(); err != nil {
			return applyReply{code: codeInsufficientStorage, message: err.Error()}
		}
	}
	data = fsm.StampCommand(data, fsm.Stamp{TimeUnixNano: n.stamp(), MaxGroups: n.cfg.MaxGroups, MaxSeries: n.cfg.MaxTotalSeries})
	f := n.raft.ApplyLog(raft.Log{Data: data, Extensions: commandChecksum(data)}, timeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrRaftShutdown):
			return applyReply{code: codeUnavailable, message: err.Error()}
		default:
			return applyReply{code: codeUnknown, message: err.Error()}
		}
	}
	reply := applyReply{code: codeOK, index: f.Index()}
	if res, ok := f.Response().(*fsm.Result); ok && res != nil && res.Err != nil {
		reply.message = res.Err.Error()
		var quota *fsm.QuotaError
		if errors.As(res.Err, &quota) {
			reply.code = codeQuota
		}
	}
	return reply
}

func replyCodeName(c byte) string {
	switch c {
	case codeOK:
		return "ok"
	case codeUnavailable:
		return "unavailable"
	case codeUnknown:
		return "unknown"
	case codeQuota:
		return "quota"
	case codeInsufficientStorage:
		return "insufficient_storage"
	}
	return "refused"
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
		if n.raft.State() == raft.Leader && n.voterCount() > 1 {
			if terr := n.raft.LeadershipTransfer().Error(); terr != nil {
				n.logger.Warn("leadership transfer before shutdown failed", "err", terr)
			} else {
				n.logger.Info("transferred leadership before shutdown")
			}
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

// loadOrPersistName returns the node name stored in dataDir, or stores and
// returns the wanted one (the hostname if empty) on first start. A wanted
// name that differs from the stored one is an error: the name is the raft
// server ID and must not change under existing state.
func loadOrPersistName(dataDir, wanted string) (string, error) {
	path := filepath.Join(dataDir, "node-name")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(b))
		if wanted != "" && wanted != stored {
			return "", fmt.Errorf("node name %q given, but %s holds state of node %q; the name cannot change", wanted, dataDir, stored)
		}
		return stored, nil
	case !os.IsNotExist(err):
		return "", fmt.Errorf("read node name: %w", err)
	}
	name := wanted
	if name == "" {
		if name, err = os.Hostname(); err != nil || name == "" {
			return "", fmt.Errorf("no --cluster.node-name given and no hostname: %v", err)
		}
	}
	if err := os.WriteFile(path, []byte(name+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("persist node name: %w", err)
	}
	return name, nil
}

// advertiseAddr returns the address to advertise: the explicit one, or the
// listener's if it is concrete, or else the first private (then any
// non-loopback) interface address. It never returns an unspecified address.
func advertiseAddr(explicit string, bound net.Addr) (*net.TCPAddr, error) {
	if explicit != "" {
		a, err := net.ResolveTCPAddr("tcp", explicit)
		if err != nil {
			return nil, fmt.Errorf("resolve advertise address %q: %w", explicit, err)
		}
		if a.IP == nil || a.IP.IsUnspecified() {
			return nil, fmt.Errorf("advertise address %q is not a concrete address", explicit)
		}
		return a, nil
	}
	tcp, ok := bound.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("unexpected listener address %v", bound)
	}
	if !tcp.IP.IsUnspecified() {
		return tcp, nil
	}
	ip, err := defaultIP()
	if err != nil {
		return nil, fmt.Errorf("listening on %v and no advertise address given: %w", bound, err)
	}
	return &net.TCPAddr{IP: ip, Port: tcp.Port}, nil
}

// defaultIP picks an interface address to advertise: a private IPv4
// address first, any global unicast next, loopback last.
func defaultIP() (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var global, loopback net.IP
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil {
			continue
		}
		switch {
		case ipn.IP.IsPrivate():
			return ipn.IP, nil
		case ipn.IP.IsGlobalUnicast() && global == nil:
			global = ipn.IP
		case ipn.IP.IsLoopback() && loopback == nil:
			loopback = ipn.IP
		}
	}
	if global != nil {
		return global, nil
	}
	if loopback != nil {
		return loopback, nil
	}
	return nil, errors.New("no usable interface address")
}

// isLoopback reports whether a listener address is a loopback address
// (reachable from this machine only).
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// newHCLogger routes raft's hclog output into the node's slog logger.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		DisableTime: true,
		Level:       hclog.Info,
		Output:      &logWriter{l: l, component: "raft"},
	})
}

// logWriter forwards the formatted lines of raft's and memberlist's
// loggers to slog: warnings and errors at their level, everything else
// (elections, peers added, snapshots: raft's INFO chatter) at debug, so a
// node's default log says what a user needs; --log.level=debug shows them.
type logWriter struct {
	l         *slog.Logger
	component string
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.Contains(line, "[ERR"):
		level = slog.LevelError
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelWarn
	}
	if w.component == "memberlist" && isEncryptionError(line) {
		// memberlist logs a failed join attempt at debug level only, and
		// drops the error when another address (often this node's own)
		// answered: a key mismatch must be visible at the default level.
		if level < slog.LevelWarn {
			level = slog.LevelWarn
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(line, "[DEBUG]"), "[INFO]"))
		}
		w.l.Log(context.Background(), level, line, "module", w.component, "hint", gossipKeyHint)
		return len(p), nil
	}
	w.l.Log(context.Background(), level, line, "module", w.component)
	return len(p), nil
}
