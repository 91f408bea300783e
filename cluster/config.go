package cluster

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
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
	// LocalApplyWait makes Submit on a follower wait until this node has
	// applied the write itself, not only the leader: read-your-writes on
	// the accepting node for readers that skip ReadBarrier (stale reads).
	// Readers that pass ReadBarrier see every acknowledged write without
	// it, so by default a forwarded write is answered once the leader has
	// applied it.
	LocalApplyWait bool
	// ReadTimeout bounds how long ReadBarrier waits for a read index and
	// for this node to apply up to it (--cluster.read-timeout; default
	// DefaultReadTimeout).
	ReadTimeout time.Duration
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
	// tuneRaft, a test hook, changes raft's configuration last.
	tuneRaft func(*raft.Config)
	// snapshotFloor, a test hook, replaces minSnapshotThreshold when set.
	snapshotFloor uint64
	// noRaftSnapshotChecks, a test hook, keeps raft's own snapshot checks
	// from running: only the cadence loop's snapshots are taken.
	noRaftSnapshotChecks bool
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
