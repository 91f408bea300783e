package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

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
	// RaftListen is the address raft listens on (--raft.listen-address).
	RaftListen string
	// RaftAdvertise is the address other nodes reach raft at; empty means
	// derived from RaftListen (never 0.0.0.0).
	RaftAdvertise string
	// WriteTimeout bounds how long a write may wait for a leader and a
	// commit (--cluster.write-timeout).
	WriteTimeout time.Duration
	// State is the state machine the log is applied to.
	State *fsm.FSM
	// Logger receives the node's logs, raft's included.
	Logger *slog.Logger
	// Raft overrides raft's timing settings, for tests; nil means defaults.
	Raft *raft.Config
}

// Node is one member of the cluster: raft plus the state machine.
type Node struct {
	cfg       Config
	name      string
	advertise string
	raft      *raft.Raft
	fsm       *raftFSM
	transport *raft.NetworkTransport
	stores    *raftboltdb.BoltStore
	logger    *slog.Logger
	ready     atomic.Bool
	stop      chan struct{}
	done      chan struct{}
}

// Start opens the stores under cfg.DataDir, starts raft and, when this node
// has no state yet and no peers, bootstraps a one-node cluster.
func Start(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create storage path: %w", err)
	}
	name, err := loadOrPersistName(cfg.DataDir, cfg.NodeName)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, name: name, logger: cfg.Logger, fsm: newRaftFSM(cfg.State), stop: make(chan struct{}), done: make(chan struct{})}

	hlog := newHCLogger(cfg.Logger)
	listener, err := net.Listen("tcp", cfg.RaftListen)
	if err != nil {
		return nil, fmt.Errorf("raft listen on %s: %w", cfg.RaftListen, err)
	}
	adv, err := advertiseAddr(cfg.RaftAdvertise, listener.Addr())
	if err != nil {
		listener.Close()
		return nil, err
	}
	n.advertise = adv.String()
	n.transport = raft.NewNetworkTransportWithLogger(&streamLayer{Listener: listener, advertise: adv}, 5, 10*time.Second, hlog.Named("transport"))

	raftDir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o750); err != nil {
		n.transport.Close()
		return nil, fmt.Errorf("create raft dir: %w", err)
	}
	n.stores, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, "raft.db")})
	if err != nil {
		n.transport.Close()
		return nil, fmt.Errorf("open raft log store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hlog.Named("snapshots"))
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}

	rc := raft.DefaultConfig()
	if cfg.Raft != nil {
		c := *cfg.Raft
		rc = &c
	}
	rc.LocalID = raft.ServerID(name)
	rc.Logger = hlog

	existing, err := raft.HasExistingState(n.stores, n.stores, snaps)
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("inspect raft state: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, n.fsm, n.stores, n.stores, snaps, n.transport)
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	if !existing {
		n.logger.Info("no raft state found, bootstrapping a one-node cluster", "node", name, "raft_address", n.advertise)
		f := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: raft.ServerID(name), Address: raft.ServerAddress(n.advertise),
		}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			_ = n.Shutdown()
			return nil, fmt.Errorf("bootstrap cluster: %w", err)
		}
	} else {
		n.logger.Info("restarting from existing raft state", "node", name, "raft_address", n.advertise)
	}
	go n.watchReady()
	return n, nil
}

// Name returns the node's name, its raft server ID.
func (n *Node) Name() string { return n.name }

// RaftAddress returns the advertised raft address.
func (n *Node) RaftAddress() string { return n.advertise }

// watchReady marks the node ready once it knows a leader and has applied
// everything committed before: on the leader, a barrier does both.
func (n *Node) watchReady() {
	defer close(n.done)
	for {
		select {
		case <-n.stop:
			return
		default:
		}
		addr, _ := n.raft.LeaderWithID()
		if addr == "" || n.raft.State() != raft.Leader {
			select {
			case <-n.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		if err := n.raft.Barrier(n.cfg.WriteTimeout).Error(); err != nil {
			n.logger.Warn("barrier after election failed, retrying", "err", err)
			continue
		}
		n.ready.Store(true)
		n.logger.Info("node is ready", "node", n.name, "applied_index", n.fsm.appliedIndex())
		return
	}
}

// Ready returns nil when the node knows the leader and has applied what was
// committed when it became ready, or an error saying what it waits for.
func (n *Node) Ready() error {
	if addr, _ := n.raft.LeaderWithID(); addr == "" {
		return errors.New("no raft leader known")
	}
	if !n.ready.Load() {
		return errors.New("catching up with the raft log")
	}
	return nil
}

// Submit proposes a command and waits until it is committed and applied
// on this node. The returned result carries the state machine's verdict.
// Errors are *UnavailableError (certainly not applied) or
// *OutcomeUnknownError (may still be applied).
func (n *Node) Submit(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	data, err := cmd.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.WriteTimeout)
	defer cancel()
	if err := n.waitForLeader(ctx); err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	f := n.raft.Apply(data, time.Until(deadline))
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrRaftShutdown):
			return nil, &UnavailableError{Reason: err.Error()}
		default:
			return nil, &OutcomeUnknownError{Reason: err.Error()}
		}
	}
	res, _ := f.Response().(*fsm.Result)
	if res == nil {
		res = &fsm.Result{}
	}
	// The leader applied the entry before the future resolved; wait all the
	// same so the rule "answer after local apply" holds on every path.
	ch, giveUp := n.fsm.waitCh(f.Index())
	defer giveUp()
	select {
	case <-ch:
		return res, nil
	case <-ctx.Done():
		return nil, &OutcomeUnknownError{Reason: "committed but not applied locally in time"}
	}
}

// waitForLeader waits until this node is the leader. (Forwarding writes to
// another leader is the cluster layer's next step.)
func (n *Node) waitForLeader(ctx context.Context) error {
	for {
		if n.raft.State() == raft.Leader {
			return nil
		}
		select {
		case <-ctx.Done():
			return &UnavailableError{Reason: fmt.Sprintf("no raft leader within %s", n.cfg.WriteTimeout)}
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Shutdown stops raft and closes the stores.
func (n *Node) Shutdown() error {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	<-n.done
	err := n.raft.Shutdown().Error()
	n.closeStores()
	if err != nil {
		return fmt.Errorf("shut down raft: %w", err)
	}
	return nil
}

func (n *Node) closeStores() {
	if n.transport != nil {
		_ = n.transport.Close()
	}
	if n.stores != nil {
		if err := n.stores.Close(); err != nil {
			n.logger.Error("close raft store", "err", err)
		}
	}
}

// Snapshot asks raft to take a snapshot now (used by tests and operators).
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

// streamLayer is raft's TCP stream layer with an explicit advertise address.
type streamLayer struct {
	net.Listener
	advertise net.Addr
}

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// Addr implements net.Listener with the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// newHCLogger routes raft's hclog output into the node's slog logger.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		DisableTime: true,
		Level:       hclog.Info,
		Output:      &slogWriter{l: l},
	})
}

// slogWriter forwards hclog's formatted lines to slog.
type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.Contains(line, "[ERROR]"):
		level = slog.LevelError
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.Contains(line, "[DEBUG]"), strings.Contains(line, "[TRACE]"):
		level = slog.LevelDebug
	}
	w.l.Log(context.Background(), level, line, "component", "raft")
	return len(p), nil
}
