package cluster

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"
)

// TestSnapshotThreshold: two entries per group, within the bounds; a floor
// set by a test lowers the lower bound (and the upper one below it).
func TestSnapshotThreshold(t *testing.T) {
	for _, c := range []struct {
		groups int
		floor  uint64
		want   uint64
	}{
		{0, minSnapshotThreshold, minSnapshotThreshold},
		{1000, minSnapshotThreshold, minSnapshotThreshold},
		{2048, minSnapshotThreshold, 4096},
		{10000, minSnapshotThreshold, 20000},
		{16384, minSnapshotThreshold, maxSnapshotThreshold},
		{100000, minSnapshotThreshold, maxSnapshotThreshold},
		{0, 32, 32},
		{40, 32, 80},
		{1 << 20, 1 << 20, 1 << 20},
	} {
		if got := snapshotThreshold(c.groups, c.floor); got != c.want {
			t.Errorf("%d groups, floor %d: %d, want %d", c.groups, c.floor, got, c.want)
		}
	}
}

// TestSnapshotCheckEvery: five times the last snapshot's duration, in
// whole seconds, within the bounds.
func TestSnapshotCheckEvery(t *testing.T) {
	for _, c := range []struct{ last, want time.Duration }{
		{0, time.Second},
		{16 * time.Millisecond, time.Second},
		{200 * time.Millisecond, time.Second},
		{500 * time.Millisecond, 3 * time.Second},
		{time.Second, 5 * time.Second},
		{1800 * time.Millisecond, 9 * time.Second},
		{2200 * time.Millisecond, maxSnapshotCheckInterval},
		{time.Minute, maxSnapshotCheckInterval},
	} {
		if got := snapshotCheckEvery(c.last); got != c.want {
			t.Errorf("after a snapshot of %v: every %v, want %v", c.last, got, c.want)
		}
	}
}

// TestSnapshotDue: a snapshot is due once the log holds the threshold's
// entries after the last one, and the last one ended at least four times
// its duration ago (snapshots take at most a fifth of a core); before the
// first snapshot only the entries count.
func TestSnapshotDue(t *testing.T) {
	never := time.Duration(math.MaxInt64)
	for _, c := range []struct {
		entries, threshold    uint64
		lastPersist, sinceEnd time.Duration
		want                  bool
	}{
		{32767, 32768, 0, never, false},
		{32768, 32768, 0, never, true},
		{50000, 32768, time.Second, 3999 * time.Millisecond, false},
		{50000, 32768, time.Second, 4 * time.Second, true},
		{100, 32768, time.Second, time.Hour, false},
		{40, 32, 5 * time.Millisecond, 20 * time.Millisecond, true},
	} {
		if got := snapshotDue(c.entries, c.threshold, c.lastPersist, c.sinceEnd); got != c.want {
			t.Errorf("%d entries, threshold %d, last snapshot %v ending %v ago: due %v, want %v",
				c.entries, c.threshold, c.lastPersist, c.sinceEnd, got, c.want)
		}
	}
}

// TestSnapshotCadenceFollowsTheGroups runs a node whose threshold floor is
// 32 entries, with raft's own snapshot checks off: once ready its threshold
// is the floor, the threshold follows the groups as they are pushed (two
// entries per group), and the cadence loop snapshots once the log holds
// that many entries after the last snapshot. Restarted, the node has every
// group.
func TestSnapshotCadenceFollowsTheGroups(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, WriteTimeout: 5 * time.Second, snapshotFloor: 32, noRaftSnapshotChecks: true}
	n, state := startNodeWith(t, cfg)
	threshold := func() uint64 { return n.raft.ReloadableConfig().SnapshotThreshold }
	waitFor(t, "the cadence of an empty store", 10*time.Second, func() bool {
		return threshold() == 32 && n.raft.ReloadableConfig().SnapshotInterval == raftChecksOff
	})
	const groups = 40
	for i := range groups {
		if r := push(t, n, int64(i+1), "a 1\n", map[string]string{"job": fmt.Sprint("j", i)}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	waitFor(t, "the threshold of 40 groups", 10*time.Second, func() bool { return threshold() == 2*groups })
	snapshotIndex := func() uint64 {
		v, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
		return v
	}
	before := snapshotIndex()
	for i := range 2*groups + 1 {
		if r := push(t, n, int64(100+i), fmt.Sprintf("a %d\n", i), map[string]string{"job": fmt.Sprint("j", i%groups)}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	// Due once the log holds the threshold after the last snapshot, not
	// before: one taken earlier would leave fewer than 80 entries after it.
	waitFor(t, "a snapshot 80 entries after the last", 10*time.Second, func() bool { return snapshotIndex() >= before+2*groups })
	if n.fsm.lastPersist.Load() <= 0 || n.fsm.lastPersistEnd.Load() <= 0 {
		t.Fatal("the snapshot's duration and end, the cadence of the snapshots, were not recorded")
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	n2, state2 := startNodeWith(t, cfg)
	defer n2.Shutdown()
	if state2.Len() != groups || state2.AppliedIndex() < state.AppliedIndex() {
		t.Fatalf("restarted with %d groups at index %d, want %d groups at %d or later", state2.Len(), state2.AppliedIndex(), groups, state.AppliedIndex())
	}
}
