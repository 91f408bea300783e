package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// nodeMeta is what every member tells the others about itself through
// memberlist (at most memberlist.MetaMaxSize bytes).
type nodeMeta struct {
	// RaftAddr is the advertised raft (and command) address.
	RaftAddr string `json:"r"`
	// APIURL is the URL of the node's HTTP API.
	APIURL string `json:"a,omitempty"`
	// Expect is the node's --cluster.bootstrap-expect.
	Expect int `json:"e"`
	// HasState is true once the node belongs to a bootstrapped cluster.
	HasState bool `json:"s"`
	// Leaving is set just before a graceful leave, so the others can tell
	// "left" from "dead" (memberlist's callbacks do not say).
	Leaving bool `json:"l,omitempty"`
	// Features are the additions to the command encoding the node's build
	// understands (fsm.Features; none before the feature gate).
	Features uint32 `json:"f,omitempty"`
}

// memberInfo is what a node knows about one member, including departed ones.
type memberInfo struct {
	name   string
	addr   string
	meta   nodeMeta
	state  memberlist.NodeStateType
	since  time.Time // when state last changed
	hasRaw bool
}

// gossip wraps memberlist: this node's meta, the member table fed by
// memberlist's callbacks, join and leave.
type gossip struct {
	n         *Node
	ml        *memberlist.Memberlist
	advertise string
	// advIP and advPort are the advertised address, kept apart from
	// memberlist's own record of this node, which it rewrites as it runs.
	advIP     net.IP
	advPort   int
	encrypted bool   // memberlist encrypts and verifies every message
	bindIP    net.IP // the gossip listen address (nil: a host name)
	bindPort  int    // the port memberlist listens on

	mu      sync.Mutex
	meta    nodeMeta
	members map[string]*memberInfo

	// updateMu serializes memberlist.UpdateNode, which is not safe to call
	// from two goroutines at once (readiness announcing the state while
	// a shutdown announces leaving raced in it), and left records that
	// memberlist was stopped, after which nothing is announced.
	updateMu sync.Mutex
	left     bool
}

func startGossip(n *Node, hasState bool) (*gossip, error) {
	g := &gossip{n: n, members: map[string]*memberInfo{}}
	g.meta = nodeMeta{RaftAddr: n.raftAddr, APIURL: n.cfg.APIURL, Expect: n.cfg.BootstrapExpect, HasState: hasState,
		Features: uint32(fsm.SupportedFeatures)}

	host, portStr, err := net.SplitHostPort(n.cfg.GossipListen)
	if err != nil {
		return nil, fmt.Errorf("gossip listen address %q: %w", n.cfg.GossipListen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip listen port %q: %w", portStr, err)
	}
	mc := memberlist.DefaultLANConfig()
	if n.cfg.LocalNetwork {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = n.name
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	mc.BindAddr = host
	mc.BindPort = port
	mc.Delegate = g
	mc.Events = g
	mc.Logger = log.New(&logWriter{l: n.logger, component: "memberlist"}, "", 0)
	if len(n.cfg.GossipKeys) > 0 {
		// The first key encrypts; every key decrypts, so a new key can be
		// rolled out (as a second key first) without a flag day.
		kr, err := memberlist.NewKeyring(n.cfg.GossipKeys, n.cfg.GossipKeys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip keys: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	} else if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		n.logger.Warn("gossip is not encrypted: anyone who reaches the gossip port can join the member list and read it; keep it on a private network or set --cluster.gossip-key-file", "gossip_listen_address", n.cfg.GossipListen)
	}

	advHost, advPort := "", port
	if n.cfg.GossipAdvertise != "" {
		h, p, err := net.SplitHostPort(n.cfg.GossipAdvertise)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise address %q: %w", n.cfg.GossipAdvertise, err)
		}
		if advPort, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("gossip advertise port %q: %w", p, err)
		}
		advHost = h
	} else if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		advHost = host
	} else {
		ip, err := defaultIP()
		if err != nil {
			return nil, fmt.Errorf("gossip: no advertise address: %w", err)
		}
		advHost = ip.String()
	}
	if ip := net.ParseIP(advHost); ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("gossip advertise address %q is not a concrete IP address", advHost)
	}
	mc.AdvertiseAddr = advHost
	mc.AdvertisePort = advPort
	if g.meta.APIURL == "" && n.cfg.APIListen != "" {
		g.meta.APIURL = deriveAPIURL(n.cfg.APIListen, advHost, n.cfg.APITLS)
	}

	g.encrypted = mc.EncryptionEnabled() && mc.GossipVerifyIncoming && mc.GossipVerifyOutgoing
	if g.ml, err = memberlist.Create(mc); err != nil {
		return nil, fmt.Errorf("start memberlist on %s: %w", n.cfg.GossipListen, err)
	}
	local := g.ml.LocalNode()
	g.advIP, g.advPort = slices.Clone(local.Addr), int(local.Port)
	g.advertise = net.JoinHostPort(g.advIP.String(), strconv.Itoa(g.advPort))
	g.bindIP, g.bindPort = net.ParseIP(host), mc.BindPort
	return g, nil
}

// deriveAPIURL builds the API URL other members show for this node: the
// listen address with an unspecified host replaced by the advertise host.
func deriveAPIURL(listen, advHost string, https bool) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = advHost
	}
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port) + "/"
}

// NodeMeta implements memberlist.Delegate.
func (g *gossip) NodeMeta(limit int) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, err := json.Marshal(g.meta)
	if err != nil || len(b) > limit {
		g.n.logger.Error("node meta does not fit", "bytes", len(b), "limit", limit, "err", err)
		return nil
	}
	return b
}

// NotifyMsg implements memberlist.Delegate (no user messages).
func (g *gossip) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate (no user broadcasts).
func (g *gossip) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate (no push/pull state).
func (g *gossip) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (g *gossip) MergeRemoteState([]byte, bool) {}

// NotifyJoin implements memberlist.EventDelegate. Callbacks only update the
// table and signal; they never block or call into memberlist.
func (g *gossip) NotifyJoin(node *memberlist.Node) { g.record(node, memberlist.StateAlive) }

// NotifyLeave implements memberlist.EventDelegate. The node is "left" if it
// announced its departure, "dead" otherwise.
func (g *gossip) NotifyLeave(node *memberlist.Node) { g.record(node, memberlist.StateDead) }

// NotifyUpdate implements memberlist.EventDelegate.
func (g *gossip) NotifyUpdate(node *memberlist.Node) { g.record(node, memberlist.StateAlive) }

func (g *gossip) record(node *memberlist.Node, state memberlist.NodeStateType) {
	var meta nodeMeta
	hasMeta := json.Unmarshal(node.Meta, &meta) == nil
	g.mu.Lock()
	m := g.members[node.Name]
	if m == nil {
		m = &memberInfo{name: node.Name, since: time.Now()}
		g.members[node.Name] = m
	}
	if hasMeta {
		m.meta, m.hasRaw = meta, true
	}
	if state == memberlist.StateDead && m.meta.Leaving {
		state = memberlist.StateLeft
	}
	if m.state != state {
		m.since = time.Now()
	}
	m.state = state
	m.addr = net.JoinHostPort(node.Addr.String(), strconv.Itoa(int(node.Port)))
	if state == memberlist.StateDead || state == memberlist.StateLeft {
		defer g.n.forgetRemoved(node.Name)
	}
	g.mu.Unlock()
	g.n.signal()
}

// snapshot returns a copy of the member table with current states (memberlist
// reports suspicion only through Members()).
func (g *gossip) snapshot() map[string]memberInfo {
	live := map[string]memberlist.NodeStateType{}
	for _, node := range g.ml.Members() {
		live[node.Name] = node.State
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]memberInfo, len(g.members))
	for name, m := range g.members {
		c := *m
		if st, ok := live[name]; ok && st == memberlist.StateSuspect {
			c.state = st
		}
		out[name] = c
	}
	return out
}

// setHasState announces that this node belongs to a bootstrapped cluster.
func (g *gossip) setHasState() {
	g.mu.Lock()
	changed := !g.meta.HasState
	g.meta.HasState = true
	g.mu.Unlock()
	if !changed {
		return
	}
	g.updateMu.Lock()
	defer g.updateMu.Unlock()
	if g.left {
		return
	}
	if err := g.ml.UpdateNode(5 * time.Second); err != nil {
		g.n.logger.Warn("announce cluster membership via gossip", "err", err)
	}
}

// leave announces a graceful departure and stops memberlist (once).
func (g *gossip) leave() {
	g.mu.Lock()
	g.meta.Leaving = true
	g.mu.Unlock()
	g.updateMu.Lock()
	defer g.updateMu.Unlock()
	if g.left {
		return
	}
	g.left = true
	if err := g.ml.UpdateNode(2 * time.Second); err != nil {
		g.n.logger.Warn("announce leaving via gossip", "err", err)
	}
	if err := g.ml.Leave(5 * time.Second); err != nil {
		g.n.logger.Warn("leave memberlist", "err", err)
	}
	if err := g.ml.Shutdown(); err != nil {
		g.n.logger.Warn("stop memberlist", "err", err)
	}
}

// deadNodeReclaimTime is how long a member must have been dead before the
// others accept its name at a new address. Without it, a member killed
// without a goodbye (kill -9, a lost machine, an evicted pod) could never
// come back at another address, as a rescheduled pod does with its new IP:
// memberlist refuses a name it knows at another address. The wait keeps two
// live processes that share a name by mistake from taking turns; it is short
// because a name here is persisted with the node's storage, which two live
// processes cannot share.
const deadNodeReclaimTime = 5 * time.Second

// rejoinInterval is how often a node that hears from no leader announces
// itself to the other members again.
const rejoinInterval = 2 * time.Second

// announceWhileUnheard joins the configured peers and every member this
// node knows of again, every rejoinInterval, for as long as this node is
// neither the leader nor hears from one. The others learn a member's new
// address only from the member itself: once its old self has been dead for
// deadNodeReclaimTime they accept it, and a join's exchange of state is the
// word that carries it (the leader must hear it, not only the peer that
// let the node in). Once a leader is heard the loop only watches; it
// returns when the node stops.
func (n *Node) announceWhileUnheard() {
	announced := false
	for n.sleep(rejoinInterval) {
		if n.raft.State() == raft.Leader || time.Since(n.raft.LastContact()) <= rejoinInterval {
			announced = false
			continue
		}
		targets := n.announceTargets()
		if len(targets) == 0 {
			continue
		}
		if !announced {
			n.logger.Info("no word from a leader: announcing this node to the other members again", "members", targets)
			announced = true
		}
		if _, err := n.gossip.ml.Join(targets); err != nil {
			n.logger.Debug("announce to the other members", "members", targets, "err", err)
		}
	}
}

// announceTargets lists the configured peers other than this node and the
// addresses of the other members this node sees alive, without repeats.
func (n *Node) announceTargets() []string {
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, p := range n.gossip.otherPeers(n.cfg.Peers) {
		add(p)
	}
	for _, m := range n.gossip.ml.Members() {
		if m.Name != n.name {
			add(m.Address())
		}
	}
	return out
}

// runJoin joins the configured peers, retrying with backoff until another
// member is known. memberlist resolves a DNS name to all its addresses
// and joins each.
func (n *Node) runJoin() {
	defer n.wg.Done()
	if len(n.cfg.Peers) == 0 {
		close(n.joined)
		return
	}
	backoff := 100 * time.Millisecond
	for {
		peers := n.gossip.otherPeers(n.cfg.Peers)
		if len(peers) == 0 {
			n.logger.Info("every --cluster.peer is this node itself; starting without peers", "peers", n.cfg.Peers)
			n.alone.Store(true)
			close(n.joined)
			n.signal()
			return
		}
		joined, err := n.gossip.ml.Join(peers)
		// Joining only ourselves (a peer list naming every node) is not
		// enough: keep trying until another member is known.
		if joined > 0 && n.gossip.ml.NumMembers() > 1 {
			n.logger.Info("joined the cluster's gossip", "peers", n.cfg.Peers, "contacted", joined)
			close(n.joined)
			n.signal()
			n.announceWhileUnheard()
			return
		}
		if err == nil {
			// memberlist drops the errors of the other peers when one
			// address (this node's own) answered.
			err = errors.New("no other member answered")
		}
		if isEncryptionError(err.Error()) {
			n.logger.Warn("could not join any peer yet, retrying", "peers", n.cfg.Peers, "err", err, "hint", gossipKeyHint, "retry_in", backoff)
		} else {
			n.logger.Warn("could not join any peer yet, retrying", "peers", n.cfg.Peers, "err", err, "retry_in", backoff)
		}
		if !n.sleep(backoff) {
			return
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}
