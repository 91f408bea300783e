package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
)

// TestRollingUpgradeMigratesTheBoltLogStore runs a 3-node cluster of the
// last build that kept its raft log in raft.db (raft-boltdb), with writes
// and a node killed with -9, then upgrades it one node at a time: each
// node migrates raft.db to the write-ahead log on its first start, keeps
// every write, removes raft.db and takes writes again; a second restart
// finds nothing to migrate.
func TestRollingUpgradeMigratesTheBoltLogStore(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test with an older build")
	}
	const lastOnBolt = "fd9ad87" // the last commit with raft-boltdb
	old, err := procs.BuildRevision(t.TempDir(), lastOnBolt, "./cmd/pushgateway-cluster")
	if err != nil {
		t.Fatalf("build the older revision (the test needs this repository's git history): %v", err)
	}
	nodes := []*member{newMember(t, "node1"), newMember(t, "node2"), newMember(t, "node3")}
	for _, m := range nodes {
		m.bin = old
		m.start(3, nodes...)
	}
	waitReady(t, nodes...)
	for i := range 60 {
		nodes[i%3].push(fmt.Sprintf("/metrics/job/before/instance/%d", i), fmt.Sprintf("v %d\n", i))
	}
	// A node killed with -9 migrates what it has fsynced.
	nodes[2].kill()
	nodes[0].push("/metrics/job/while_one_is_down", "w 1\n")
	want := assertSameState(t, nodes[:2]...)

	// The killed node first: it comes back on the new build.
	for _, m := range []*member{nodes[2], nodes[0], nodes[1]} {
		if m.running() {
			m.stop()
		}
		if _, err := os.Stat(filepath.Join(m.dir, "raft", "raft.db")); err != nil {
			t.Fatalf("%s has no raft.db to migrate: %v", m.name, err)
		}
		m.bin = ""
		m.start(3, nodes...)
		waitReady(t, nodes...)
		if !strings.Contains(m.out.String(), "migrated the raft log from raft.db") {
			t.Fatalf("%s did not say it migrated raft.db:\n%s", m.name, m.out)
		}
		if _, err := os.Stat(filepath.Join(m.dir, "raft", "raft.db")); !os.IsNotExist(err) {
			t.Fatalf("%s kept raft.db after the migration: %v", m.name, err)
		}
		if got := assertSameState(t, nodes...); got != want {
			t.Fatalf("after %s migrated, the state changed:\n%s\nwant:\n%s", m.name, got, want)
		}
	}
	nodes[1].push("/metrics/job/after", "a 1\n")
	want = assertSameState(t, nodes...)
	if !strings.Contains(want, `"after"`) {
		t.Fatalf("write after the upgrade missing:\n%s", want)
	}

	// Nothing to migrate the second time; the write-ahead log holds it all.
	nodes[0].kill()
	nodes[0].start(3, nodes...)
	waitReady(t, nodes...)
	if strings.Contains(nodes[0].out.String(), "migrated") {
		t.Fatalf("second start migrated again:\n%s", nodes[0].out)
	}
	if got := assertSameState(t, nodes...); got != want {
		t.Fatalf("after a restart on the write-ahead log:\n%s\nwant:\n%s", got, want)
	}
}
