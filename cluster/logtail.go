package cluster

import (
	"github.com/hashicorp/raft"
)

// The log's tail, read once at start.
//
// A restart reads every entry after the newest snapshot three times before
// the node serves: the storage check verifies each (storage.go), raft
// scans them for configuration changes as it starts, and then replays them
// into the state machine, the last two one after the other. raft-wal reads
// an entry with a system call into a fresh buffer, about 8 µs an entry on
// the 2-core machine of the benchmarks, and at 100,000 groups a restart
// replays up to about 50,000 entries. So the check keeps what it read of
// the log's tail (the newest entries, at most maxLogTailBytes of their
// data), and the log store serves raft's reads of those entries from it
// until the node is ready, or until a write could change them.

// maxLogTailBytes bounds the entry data the check keeps for raft's reads.
const maxLogTailBytes = 64 << 20

// logTail is a run of consecutive log entries, as read from the store.
// Once handed to the store it is not modified.
type logTail struct {
	first uint64     // index of logs[0]
	logs  []raft.Log // their slices are raft-wal's fresh copies
	bytes int        // data and extensions held
}

// add appends l, the entry after the last one held (a gap starts the run
// anew), and drops the oldest entries beyond maxLogTailBytes.
func (t *logTail) add(l *raft.Log) {
	if len(t.logs) > 0 && l.Index != t.first+uint64(len(t.logs)) {
		*t = logTail{}
	}
	if len(t.logs) == 0 {
		t.first = l.Index
	}
	t.logs = append(t.logs, *l)
	t.bytes += entryBytes(l)
	for t.bytes > maxLogTailBytes && len(t.logs) > 0 {
		t.bytes -= entryBytes(&t.logs[0])
		t.logs[0] = raft.Log{}
		t.logs = t.logs[1:]
		t.first++
	}
}

// entryBytes is what keeping l holds besides the struct.
func entryBytes(l *raft.Log) int { return len(l.Data) + len(l.Extensions) }

// after drops the entries up to index (those a snapshot holds).
func (t *logTail) after(index uint64) {
	if len(t.logs) == 0 || index < t.first {
		return
	}
	n := min(index-t.first+1, uint64(len(t.logs)))
	for i := range n {
		t.bytes -= entryBytes(&t.logs[i])
	}
	t.logs = t.logs[n:]
	t.first += n
}

// last returns the index of the newest entry held (0 if none).
func (t *logTail) last() uint64 {
	if len(t.logs) == 0 {
		return 0
	}
	return t.first + uint64(len(t.logs)) - 1
}

// get copies entry index into out if it is held.
func (t *logTail) get(index uint64, out *raft.Log) bool {
	if len(t.logs) == 0 || index < t.first || index > t.last() {
		return false
	}
	*out = t.logs[index-t.first]
	return true
}

// overlaps reports whether an entry in [lo, hi] is held.
func (t *logTail) overlaps(lo, hi uint64) bool {
	return len(t.logs) > 0 && lo <= t.last() && hi >= t.first
}
