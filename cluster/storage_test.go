package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// corruptFollowerAndRestart runs the recovery scenario: a 3-node cluster
// takes writes, one follower snapshots, takes more writes (the last one
// carrying needle), stops, has its storage damaged by damage, misses
// further writes and restarts. The follower must say what is wrong, move
// the storage aside, catch up from its peers and end up identical to them.
// It returns the follower's log.
func corruptFollowerAndRestart(t *testing.T, needle string, damage func(t *testing.T, raftDir string)) string {
	c := startCluster(t, 3)
	leaderName := c.waitReadyAll()
	leader := c.byName(leaderName)
	victim := c.anyBut(leaderName)
	for i := range 40 {
		push(t, leader.Node, int64(i+1)*1e9, fmt.Sprintf("before_snapshot{i=\"%d\"} %d\n", i, i), map[string]string{"job": fmt.Sprintf("g%d", i)})
	}
	c.assertIdentical()
	if err := victim.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		push(t, leader.Node, int64(i+100)*1e9, fmt.Sprintf("after_snapshot{i=\"%d\"} %d\n", i, i), map[string]string{"job": fmt.Sprintf("h%d", i)})
	}
	push(t, leader.Node, 200e9, fmt.Sprintf("needle{v=%q} 1\n", needle), map[string]string{"job": "needle"})
	// The needle must not be in the last batch the follower wrote: a
	// damaged last batch reads as a write torn by a crash (see checkWAL).
	// So the follower applies it (and so has stored it) before the next
	// entry exists: replicated together, the two would be one batch.
	c.assertIdentical()
	push(t, leader.Node, 201e9, "after_needle 1\n", map[string]string{"job": "after_needle"})
	c.assertIdentical()
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	damage(t, filepath.Join(victim.dir, "raft"))
	push(t, leader.Node, 300e9, "while_down 1\n", map[string]string{"job": "while_down"})

	logs := &testutil.LockedBuffer{}
	cfg := restartConfig(victim, 3, []string{leader.GossipAddress()})
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	restarted := c.startAgain(victim, cfg)
	for i, n := range c.nodes {
		if n == victim {
			c.nodes[i] = restarted
		}
	}
	c.waitReadyAll()
	got := c.assertIdentical()
	for _, want := range []string{`needle{instance="",job="needle",v="` + needle + `"} 1`, `while_down{instance="",job="while_down"} 1`, `before_snapshot{i="0"`} {
		if !strings.Contains(got, want) {
			t.Fatalf("recovered node lacks %s:\n%s", want, got)
		}
	}
	out := logs.String()
	for _, want := range []string{"local raft storage is corrupt", "recovered the raft state from the peers"} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(victim.dir, "raft", recoveringMarker)); !os.IsNotExist(err) {
		t.Fatalf("recovery marker still present: %v", err)
	}
	moved, err := filepath.Glob(filepath.Join(victim.dir, quarantineDir, "*", "raft", walSubdir, "*.wal"))
	if err != nil || len(moved) == 0 {
		t.Fatalf("quarantined storage: %v %v", moved, err)
	}
	// A later restart finds intact storage and rejoins normally.
	if err := restarted.Shutdown(); err != nil {
		t.Fatal(err)
	}
	logs2 := &testutil.LockedBuffer{}
	cfg.State = fsm.New(nil)
	cfg.Logger = slog.New(slog.NewTextHandler(logs2, nil))
	again := c.start(cfg)
	for i, n := range c.nodes {
		if n == restarted {
			c.nodes[i] = again
		}
	}
	c.waitReadyAll()
	c.assertIdentical()
	if strings.Contains(logs2.String(), "corrupt") {
		t.Fatalf("second restart found corruption:\n%s", logs2)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "corrupt") {
			t.Log(l)
		}
	}
	return out
}

func TestCorruptSnapshotIsDetectedAndRecoveredFromPeers(t *testing.T) {
	out := corruptFollowerAndRestart(t, "n1", func(t *testing.T, dir string) {
		states, err := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
		if err != nil || len(states) == 0 {
			t.Fatalf("no snapshot to damage: %v", err)
		}
		flipByte(t, states[len(states)-1], -1)
	})
	if !strings.Contains(out, "CRC mismatch") {
		t.Fatalf("log does not name the CRC mismatch:\n%s", out)
	}
}

func TestTruncatedRaftLogIsDetectedAndRecoveredFromPeers(t *testing.T) {
	out := corruptFollowerAndRestart(t, "n2", func(t *testing.T, dir string) {
		if err := os.Truncate(newestSegment(t, dir), 3*4096); err != nil {
			t.Fatal(err)
		}
	})
	if !strings.Contains(out, "was truncated") {
		t.Fatalf("log does not name the truncation:\n%s", out)
	}
}

func TestFlippedByteInALogEntryIsDetectedAndRecoveredFromPeers(t *testing.T) {
	needle := "needle-7f3a9c"
	out := corruptFollowerAndRestart(t, needle, func(t *testing.T, dir string) {
		segments, _ := filepath.Glob(filepath.Join(dir, walSubdir, "*.wal"))
		found := 0
		for _, path := range segments {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			n := bytes.Count(b, []byte(needle))
			if n == 0 {
				continue
			}
			found += n
			// Only the command's own checksum can tell that the value
			// changed: raft-wal checks the CRC of the last batch only.
			b = bytes.ReplaceAll(b, []byte(needle), []byte("needle-7f3a9d"))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if found == 0 {
			t.Fatalf("the needle is in none of %v", segments)
		}
	})
	if !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("log does not name the checksum mismatch:\n%s", out)
	}
}

// newestSegment returns the log segment written last under raftDir.
func newestSegment(t *testing.T, raftDir string) string {
	t.Helper()
	segments, err := filepath.Glob(filepath.Join(raftDir, walSubdir, "*.wal"))
	if err != nil || len(segments) == 0 {
		t.Fatalf("no log segment under %s: %v", raftDir, err)
	}
	slices.Sort(segments) // named by their first index, zero-padded
	return segments[len(segments)-1]
}

// TestLoneNodeWithCorruptStorageDoesNotStartEmpty: without peers there is
// nobody to recover from. The node must not bootstrap a new, empty cluster
// (that would serve an empty state as if it were the real one): it stays
// unready and says why.
func TestLoneNodeWithCorruptStorageDoesNotStartEmpty(t *testing.T) {
	dir := t.TempDir()
	n, _ := startNode(t, dir)
	push(t, n, 1e9, "a 1\n", map[string]string{"job": "a"})
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	states, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	if len(states) != 1 {
		t.Fatalf("snapshots: %v", states)
	}
	flipByte(t, states[0], 10)

	logs := &testutil.LockedBuffer{}
	state := fsm.New(nil)
	n, err := Start(Config{DataDir: dir, NodeName: "n1", RaftListen: "127.0.0.1:0", GossipListen: "127.0.0.1:0", LocalNetwork: true, State: state,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	waitFor(t, "the still-recovering warning", 20*time.Second, func() bool { return strings.Contains(logs.String(), "still recovering") })
	if n.Ready() == nil || n.hasState() || len(state.Groups()) != 0 {
		t.Fatalf("lone node with corrupt storage: ready=%v state=%v groups=%d", n.Ready(), n.hasState(), len(state.Groups()))
	}
	if strings.Contains(logs.String(), "bootstrapping") {
		t.Fatalf("lone recovering node bootstrapped:\n%s", logs)
	}
}

// TestVoteRecordMissingAndRaftDBCorruptRefusesToStart: when neither
// the log store nor the vote record can say which term this node voted in, it
// must not rejoin with an empty log; it stops with instructions.
func TestVoteRecordMissingAndLogStoreCorruptRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	n, _ := startNode(t, dir)
	push(t, n, 1e9, "a 1\n", map[string]string{"job": "a"})
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "raft", voteRecordFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(newestSegment(t, filepath.Join(dir, "raft")), 4096); err != nil {
		t.Fatal(err)
	}
	_, err := Start(Config{DataDir: dir, NodeName: "n1", RaftListen: "127.0.0.1:0", GossipListen: "127.0.0.1:0", LocalNetwork: true, State: fsm.New(nil)})
	if err == nil || !strings.Contains(err.Error(), "remove-member") {
		t.Fatalf("want a refusal naming remove-member, got %v", err)
	}
}

// TestRecoveringTransportTakesNoPartInElections sends real vote requests
// over loopback TCP to and from a recovering node's transport.
func TestRecoveringTransportTakesNoPartInElections(t *testing.T) {
	other, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 2*time.Second, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	inner, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 2*time.Second, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	var recovering atomic.Bool
	recovering.Store(true)
	stop := make(chan struct{})
	defer close(stop)
	rt := newRaftTransport(inner, &recovering, stop)
	serve := func(consumer <-chan raft.RPC) {
		for {
			select {
			case <-stop:
				return
			case rpc := <-consumer:
				switch rpc.Command.(type) {
				case *raft.RequestVoteRequest:
					rpc.Respond(&raft.RequestVoteResponse{Granted: true}, nil)
				case *raft.AppendEntriesRequest:
					rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
				default:
					rpc.Respond(nil, fmt.Errorf("unexpected %T", rpc.Command))
				}
			}
		}
	}
	go serve(rt.Consumer())
	go serve(other.Consumer())

	vote := func(from raft.Transport, to raft.ServerAddress) (bool, error) {
		var resp raft.RequestVoteResponse
		err := from.RequestVote("x", to, &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("x"), Addr: []byte("x")}, Term: 5}, &resp)
		return resp.Granted, err
	}
	if _, err := vote(other, rt.LocalAddr()); err == nil || !strings.Contains(err.Error(), "does not vote") {
		t.Fatalf("vote request to a recovering node: %v", err)
	}
	if _, err := vote(rt, other.LocalAddr()); err != errRecovering {
		t.Fatalf("vote request from a recovering node: %v", err)
	}
	var ae raft.AppendEntriesResponse
	if err := other.AppendEntries("x", rt.LocalAddr(), &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("x"), Addr: []byte("x")}, Term: 5}, &ae); err != nil || !ae.Success {
		t.Fatalf("replication to a recovering node: %v %v", err, ae.Success)
	}
	recovering.Store(false)
	if granted, err := vote(other, rt.LocalAddr()); err != nil || !granted {
		t.Fatalf("vote request after recovery: %v %v", granted, err)
	}
	if granted, err := vote(rt, other.LocalAddr()); err != nil || !granted {
		t.Fatalf("vote request from a recovered node: %v %v", granted, err)
	}
}

// flipByte inverts one byte of a file: at offset, or in the middle when
// offset is negative.
func flipByte(t *testing.T, path string, offset int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if offset < 0 {
		offset = len(b) / 2
	}
	b[offset] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestGuardedTurnsAFaultIntoAnError reads a mapped file past its end after
// truncation (what bolt does with a truncated raft.db): guarded must turn
// the SIGBUS into a reported panic instead of a crash.
func TestGuardedTurnsAFaultIntoAnError(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "mapped")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(2 * 4096); err != nil {
		t.Fatal(err)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, 2*4096, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(data)
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	var got any
	var read byte
	guarded(func() { read = data[4096+7] }, func(p any) { got = p })
	if got == nil {
		t.Fatalf("reading past the end of a truncated mapping did not fault (read %d)", read)
	}
	t.Logf("fault reported as: %v", got)
}
