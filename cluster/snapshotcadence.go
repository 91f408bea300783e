package cluster

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// Snapshot cadence: how much log a restart replays.
//
// A restart restores the newest snapshot and replays the entries after it,
// so the snapshot threshold (SnapshotThreshold: entries in the log after
// the last snapshot) bounds a restart's replay, and how promptly a snapshot
// follows the threshold decides by how much writes overshoot it.
//
// A snapshot's cost grows with the state and a replay's with the entries
// replayed, so both follow the store:
//   - the threshold is snapshotPerGroup entries per group, within
//     [minSnapshotThreshold, maxSnapshotThreshold]: a snapshot encodes a
//     group in about 15 µs, so under writes snapshots cost about 8 µs of
//     CPU per write, and a restart replays at most about twice as many
//     entries as there are groups (at 100,000 groups 32,768, under a
//     second);
//   - the cadence loop looks every second, once the node is ready, and asks
//     raft for a snapshot (raft.Snapshot) when the log holds the threshold's
//     entries after the last snapshot and the last snapshot ended at least
//     snapshotSpacing-1 times its duration ago: snapshots take at most
//     1/snapshotSpacing of a core (at 100,000 groups a snapshot takes 1–1.5
//     s of one; taking them as often as writes allowed took 15% of the push
//     throughput), and writes overshoot the threshold by a second's worth
//     plus those that arrive while the snapshot is written;
//   - raft's own check stays behind it, with the same threshold, every
//     snapshotSpacing times as long as the last snapshot took to write
//     (within [snapshotCheckInterval, maxSnapshotCheckInterval]). It alone
//     let writes overshoot by up to two intervals, as raft staggers its
//     checks up to twice the interval: a restart after the soak of the
//     benchmark at 17:15 on 2026-12-07 replayed 50,582 entries for a
//     threshold of 32,768.
//
// Measured (pgbench, one node, kill -9 after 20 s of pushes, with raft's
// checks alone): at 1,000 groups restart to ready 2.86–2.92 s → 0.26 s
// (raft's checks every 10 s let writes at 5,000/s pile up 30,000–60,000
// entries), at 10,000 groups 1.16–3.72 s → 0.38–1.54 s; push throughput
// unchanged.
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

// snapshotDue reports whether the cadence asks for a snapshot now: the log
// holds at least threshold entries after the last snapshot, and the last
// snapshot, which took lastPersist to write, ended sinceEnd ago, at least
// snapshotSpacing-1 times lastPersist.
func snapshotDue(entries, threshold uint64, lastPersist, sinceEnd time.Duration) bool {
	return entries >= threshold && sinceEnd >= (snapshotSpacing-1)*lastPersist
}

// runSnapshotCadence keeps raft's snapshot threshold and check interval in
// step with the store once the node is ready (until then
// startSnapshotThreshold stands), and asks for a snapshot when one is due
// (snapshotDue). raft starts checking every second: it takes a new
// interval only after the wait under way, so starting with a long one
// would leave a small store unchecked for up to twice that.
func (n *Node) runSnapshotCadence() {
	defer n.wg.Done()
	floor := uint64(minSnapshotThreshold)
	if n.cfg.snapshotFloor > 0 {
		floor = n.cfg.snapshotFloor
	}
	var retryAt time.Time // after a snapshot failed
	for n.sleep(snapshotCheckInterval) {
		if !n.ready.Load() {
			continue
		}
		threshold := snapshotThreshold(n.state.Len(), floor)
		interval := n.raftSnapshotChecks(time.Duration(n.fsm.lastPersist.Load()))
		if c := n.raft.ReloadableConfig(); c.SnapshotThreshold != threshold || c.SnapshotInterval != interval {
			if err := n.reloadRaft(func(c *raft.ReloadableConfig) { c.SnapshotThreshold, c.SnapshotInterval = threshold, interval }); err != nil {
				n.logger.Warn("could not adjust the snapshot cadence", "threshold", threshold, "interval", interval, "err", err)
			}
		}
		if time.Now().Before(retryAt) {
			continue
		}
		if err := n.snapshotIfDue(threshold); err != nil {
			retryAt = time.Now().Add(maxSnapshotCheckInterval)
			n.logger.Warn("could not take a snapshot; trying again later", "retry_in", maxSnapshotCheckInterval, "err", err)
		}
	}
}

// raftChecksOff is raft's snapshot check interval when a test turns its
// checks off.
const raftChecksOff = 24 * time.Hour

// raftSnapshotChecks is the interval of raft's own snapshot checks after a
// snapshot that took lastPersist to write (snapshotCheckEvery), or
// raftChecksOff when a test turns them off.
func (n *Node) raftSnapshotChecks(lastPersist time.Duration) time.Duration {
	if n.cfg.noRaftSnapshotChecks {
		return raftChecksOff
	}
	return snapshotCheckEvery(lastPersist)
}

// snapshotIfDue takes a snapshot, waiting for it, if one is due, and
// returns why it failed if it did.
func (n *Node) snapshotIfDue(threshold uint64) error {
	// The log after the newest snapshot, taken, being written or restored:
	// one under way is not due again.
	last := n.fsm.lastCapture.Load()
	applied := n.raft.AppliedIndex()
	if applied < last {
		return nil
	}
	sinceEnd := time.Duration(math.MaxInt64) // no snapshot written yet
	if ended := n.fsm.lastPersistEnd.Load(); ended > 0 {
		sinceEnd = sinceProcessStart() - time.Duration(ended)
	}
	if !snapshotDue(applied-last, threshold, time.Duration(n.fsm.lastPersist.Load()), sinceEnd) {
		return nil
	}
	err := n.raft.Snapshot().Error()
	if err == nil || errors.Is(err, raft.ErrNothingNewToSnapshot) || errors.Is(err, raft.ErrRaftShutdown) {
		return nil
	}
	return fmt.Errorf("snapshot of %d entries after the last (threshold %d): %w", applied-last, threshold, err)
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
