package cluster

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// Voter is a member of the configuration Recover writes.
type Voter struct {
	// Name is the node name (raft server ID).
	Name string
	// RaftAddress is the address its raft port is reached at.
	RaftAddress string
}

// ParseVoters parses "name=host:port,name=host:port".
func ParseVoters(s string) ([]Voter, error) {
	var out []Voter
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, addr, ok := strings.Cut(part, "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("voter %q is not name=host:port", part)
		}
		if seen[name] {
			return nil, fmt.Errorf("voter %q given twice", name)
		}
		seen[name] = true
		out = append(out, Voter{Name: name, RaftAddress: addr})
	}
	return out, nil
}

// Recover rewrites the raft state in dataDir, of a STOPPED node, so that it
// starts as a member of a new configuration made of voters only, like
// raft's peers.json: the way out for a cluster that lost its quorum for
// good. It replays the node's log into a fresh state machine, writes a
// snapshot holding that state and the new configuration, and compacts the
// log. With no voters, the node alone is the new configuration, at the raft
// address it had in the last configuration it knew.
//
// newState must return state machines like the running node's (the same
// reserved families), so the replay gives the same verdicts. Log entries the
// node had appended but never saw committed are applied too: what the
// survivor has is what the recovered cluster gets.
//
// It returns the configuration written.
func Recover(dataDir string, voters []Voter, newState func() *fsm.FSM, logger *slog.Logger) (raft.Configuration, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "node-name"))
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("%s holds no node state: %w", dataDir, err)
	}
	name := strings.TrimSpace(string(b))
	raftDir := filepath.Join(dataDir, raftSubdir)
	walDir := filepath.Join(raftDir, walSubdir)
	if !exists(walDir) && !exists(filepath.Join(raftDir, legacyLogFile)) {
		return raft.Configuration{}, fmt.Errorf("%s holds no raft log", dataDir)
	}
	if err := finishMigration(raftDir); err != nil {
		return raft.Configuration{}, err
	}
	if !exists(walDir) {
		if err := migrateLegacyLog(raftDir, logger); err != nil {
			return raft.Configuration{}, err
		}
	}
	hlog := newHCLogger(logger)
	stores, err := openWAL(walDir, hlog.Named("wal"))
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("%w (stop the node first)", err)
	}
	defer stores.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hlog.Named("snapshots"))
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("open snapshot store: %w", err)
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(name))
	defer trans.Close()
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(name)
	conf.Logger = hlog

	var servers []raft.Server
	if len(voters) == 0 {
		old, err := raft.GetConfiguration(conf, newRaftFSM(newState()), stores, stores, snaps, trans)
		if err != nil {
			return raft.Configuration{}, fmt.Errorf("read the last configuration: %w", err)
		}
		for _, s := range old.Servers {
			if string(s.ID) == name {
				servers = []raft.Server{{Suffrage: raft.Voter, ID: s.ID, Address: s.Address}}
			}
		}
		if servers == nil {
			return raft.Configuration{}, fmt.Errorf("node %s is not in its last known configuration %v; name the voters", name, old.Servers)
		}
	} else {
		self := false
		for _, v := range voters {
			self = self || v.Name == name
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.Name), Address: raft.ServerAddress(v.RaftAddress)})
		}
		if !self {
			return raft.Configuration{}, fmt.Errorf("the voters must include this node, %s", name)
		}
		sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	}
	cfg := raft.Configuration{Servers: servers}
	conf = raft.DefaultConfig()
	conf.LocalID = raft.ServerID(name)
	conf.Logger = hlog
	if err := raft.RecoverCluster(conf, newRaftFSM(newState()), stores, stores, snaps, trans, cfg); err != nil {
		return raft.Configuration{}, fmt.Errorf("recover: %w", err)
	}
	logger.Info("recovered the raft state with a new configuration", "node", name, "servers", fmt.Sprint(servers))
	return cfg, nil
}
