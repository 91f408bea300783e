package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Snapshot cadence: how much log a restart replays.
//
// raft checks every SnapshotInterval (staggered up to twice that) whether
// the log holds SnapshotThreshold entries after the last snapshot, and
// then snapshots and compacts it. A restart restores the snapshot and
// replays the entries after it, so the threshold bounds a restart's replay
// and the interval how far writes overshoot it.
//
// A snapshot's cost grows with the state and a replay's with the entries
// replayed, so both follow the store:
//   - the threshold is snapshotPerGroup entries per group, within
//     [minSnapshotThreshold, maxSnapshotThreshold]: a snapshot encodes a
//     group in about 15 µs, so under writes snapshots cost about 8 µs of
//     CPU per write, and a restart replays at most about twice as many
//     entries as there are groups (at 100,000 groups at most 32,768, about
//     1.5 s);
//   - the check runs every snapshotSpacing times as long as the last
//     snapshot took to write, within [snapshotCheckInterval,
//     maxSnapshotCheckInterval]: a small store is checked every second, so
//     writes overshoot the threshold by a second or two of writes, and a
//     large one no more often than a snapshot can be afforded (at 100,000
//     groups a snapshot takes 1.5–2 s of a core; checking every second
//     there took 15% of the push throughput).
//
// Measured (pgbench, one node, kill -9 after 20 s of pushes): at 1,000
// groups restart to ready 2.86–2.92 s → 0.26 s (raft's checks every 10 s
// let writes at 5,000/s pile up 30,000–60,000 entries), at 10,000 groups
// 1.16–3.72 s → 0.38–1.54 s; push throughput unchanged.
const (
	snapshotCheckInterval    = time.Second
	maxSnapshotCheckInterval = 10 * time.Second
	snapshotSpacing          = 5
	minSnapshotThreshold     = 4096
	maxSnapshotThreshold     = 32768
	snapshotPerGroup         = 2
	// startSnapshotThreshold holds snapshots off until the node is ready:
	// a restart's replay may be longer than maxSnapshotThreshold (writes
	// overshoot it), and a snapshot of a large store written meanwhile
	// competes with the replay for the CPU. It still bounds the log of a
	// node that takes long to be ready.
	startSnapshotThreshold = 4 * maxSnapshotThreshold
)

// snapshotCheckEvery is the interval of raft's snapshot checks after a
// snapshot that took this long to write (0: none yet), in whole seconds.
func snapshotCheckEvery(lastPersist time.Duration) time.Duration {
	d := (snapshotSpacing * lastPersist).Round(time.Second)
	return min(max(d, snapshotCheckInterval), maxSnapshotCheckInterval)
}

// snapshotThreshold is the snapshot threshold for a store of this many
// groups, never below floor (minSnapshotThreshold unless a test lowers it).
func snapshotThreshold(groups int, floor uint64) uint64 {
	return min(max(uint64(groups)*snapshotPerGroup, floor), max(maxSnapshotThreshold, floor))
}

// runSnapshotCadence keeps raft's snapshot threshold and check interval in
// step with the store once the node is ready (until then
// startSnapshotThreshold stands). raft starts checking every second:
// it takes a new interval only after the wait under way, so starting with
// a long one would leave a small store unchecked for up to twice that.
func (n *Node) runSnapshotCadence() {
	defer n.wg.Done()
	floor := uint64(minSnapshotThreshold)
	if n.cfg.snapshotFloor > 0 {
		floor = n.cfg.snapshotFloor
	}
	for n.sleep(snapshotCheckInterval) {
		if !n.ready.Load() {
			continue
		}
		threshold := snapshotThreshold(n.state.Len(), floor)
		interval := snapshotCheckEvery(time.Duration(n.fsm.lastPersist.Load()))
		if c := n.raft.ReloadableConfig(); c.SnapshotThreshold == threshold && c.SnapshotInterval == interval {
			continue
		}
		if err := n.reloadRaft(func(c *raft.ReloadableConfig) { c.SnapshotThreshold, c.SnapshotInterval = threshold, interval }); err != nil {
			n.logger.Warn("could not adjust the snapshot cadence", "threshold", threshold, "interval", interval, "err", err)
		}
	}
}

// reloadRaft changes raft's reloadable configuration: the current one with
// change applied. Every change goes through here, so two never overwrite
// each other's fields.
func (n *Node) reloadRaft(change func(*raft.ReloadableConfig)) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	rc := n.raft.ReloadableConfig()
	change(&rc)
	if err := n.raft.ReloadConfig(rc); err != nil {
		return fmt.Errorf("reload raft's configuration: %w", err)
	}
	return nil
}
