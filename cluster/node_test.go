package cluster

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

func startNode(t *testing.T, dir string) (*Node, *fsm.FSM) {
	return startNodeTimeout(t, dir, 5*time.Second)
}

func startNodeTimeout(t *testing.T, dir string, writeTimeout time.Duration) (*Node, *fsm.FSM) {
	return startNodeWith(t, Config{DataDir: dir, WriteTimeout: writeTimeout})
}

// startNodeClock starts a lone node whose clock is now.
func startNodeClock(t *testing.T, dir string, now func() time.Time) (*Node, *fsm.FSM) {
	return startNodeWith(t, Config{DataDir: dir, WriteTimeout: 5 * time.Second, Now: now})
}

// startNodeWith starts a lone node "n1" on loopback with cfg's storage,
// write timeout, clock and snapshot floor.
func startNodeWith(t *testing.T, cfg Config) (*Node, *fsm.FSM) {
	t.Helper()
	state := fsm.New(nil)
	n, err := Start(Config{DataDir: cfg.DataDir, NodeName: "n1", RaftListen: "127.0.0.1:0", GossipListen: "127.0.0.1:0", LocalNetwork: true,
		State: state, WriteTimeout: cfg.WriteTimeout, Now: cfg.Now, snapshotFloor: cfg.snapshotFloor,
		noRaftSnapshotChecks: cfg.noRaftSnapshotChecks})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	return n, state
}

func waitReady(t *testing.T, n *Node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("node not ready: %v", n.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func push(t *testing.T, n *Node, ts int64, text string, labels map[string]string) *fsm.Result {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	m, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	cmd := &fsm.Command{Op: fsm.OpPut, Labels: labels, TimeUnixNano: ts}
	for _, mf := range m {
		cmd.Families = append(cmd.Families, mf)
	}
	res, err := n.Submit(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func exposition(t *testing.T, s *fsm.FSM) string {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range s.Families() {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// pushClock is a node clock for tests that check times exactly: the
// leader stamps every push with it.
func pushClock() time.Time { return time.Unix(0, 1_700_000_000_123_456_789) }

func TestRestartRestoresEveryGroupExactly(t *testing.T) {
	dir := t.TempDir()
	n, state := startNodeClock(t, dir, pushClock)
	if r := push(t, n, 1_700_000_000_123_456_789, "# TYPE a counter\na 1\n", map[string]string{"job": "j1"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := push(t, n, 1_700_000_001_000_000_000, "# TYPE a gauge\na 1\n", map[string]string{"job": "j2"}); r.Err == nil {
		t.Fatal("conflicting push accepted")
	}
	// Take a snapshot in the middle so restart uses snapshot + log tail.
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if r := push(t, n, 1_700_000_002_000_000_000, "b 2\n", map[string]string{"job": "j3", "instance": "i"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	before := exposition(t, state)
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}

	n2, state2 := startNodeClock(t, dir, pushClock)
	defer n2.Shutdown()
	// The log tail is applied once the node is leader again.
	deadline := time.Now().Add(5 * time.Second)
	for exposition(t, state2) != before {
		if time.Now().After(deadline) {
			t.Fatalf("after restart:\n%s\nwant:\n%s", exposition(t, state2), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(before, `push_time_seconds{instance="",job="j1"} 1.7000000001234567e+09`) {
		t.Fatalf("push time not kept exactly:\n%s", before)
	}
	if n2.Name() != "n1" {
		t.Fatalf("node name %q", n2.Name())
	}
}

func TestNodeNameIsPersistedAndCannotChange(t *testing.T) {
	dir := t.TempDir()
	if name, err := loadOrPersistName(dir, ""); err != nil || name == "" {
		t.Fatalf("default name %q, %v", name, err)
	}
	stored, _ := os.ReadFile(filepath.Join(dir, "node-name"))
	if _, err := loadOrPersistName(dir, "other"); err == nil {
		t.Fatalf("changing the name of %q must fail", strings.TrimSpace(string(stored)))
	}
}

func TestAdvertiseAddressIsNeverUnspecified(t *testing.T) {
	if _, err := advertiseAddr("0.0.0.0:9095", nil); err == nil {
		t.Fatal("advertising 0.0.0.0 must be refused")
	}
	a, err := advertiseAddr("", &net.TCPAddr{IP: net.IPv4zero, Port: 9095})
	if err != nil {
		t.Fatal(err)
	}
	if a.IP.IsUnspecified() || a.Port != 9095 {
		t.Fatalf("derived advertise address %v", a)
	}
}

func TestSubmitWithoutLeaderIsUnavailable(t *testing.T) {
	n, _ := startNodeTimeout(t, t.TempDir(), 300*time.Millisecond)
	defer n.Shutdown()
	if err := n.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	_, err := n.Submit(context.Background(), &fsm.Command{Op: fsm.OpWipe})
	var u *UnavailableError
	if !errors.As(err, &u) {
		t.Fatalf("want UnavailableError, got %v", err)
	}
}
