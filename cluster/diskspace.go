package cluster

import (
	"fmt"
	"sync"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// A full disk must not kill a node: raft panics when it cannot persist its
// term or vote, and a node that dies takes its reads with it (in a cluster
// whose nodes have the same volume size, all of them at once). So writes
// that grow the state are refused before the filesystem of --storage.path
// is full: while its free space is below --storage.min-free-bytes on this
// node, or on any voter as last reported to the leader, pushes, imports
// and restores get InsufficientStorageError (507) and nothing is proposed;
// deletes, wipes and expiry still pass (they are small and make room).
// Reads, health and the UI are untouched, and writes resume by themselves
// once space is back.

// DefaultMinFreeBytes is the free space --storage.min-free-bytes keeps by
// default: room for raft's term and vote, a few log entries in flight and
// a small store's snapshot.
const DefaultMinFreeBytes = 64 << 20

// diskCheckInterval bounds how often the free space is read.
const diskCheckInterval = 500 * time.Millisecond

// InsufficientStorageError says that a write was refused, certainly not
// applied, because a node's storage is below its free-space reserve.
type InsufficientStorageError struct{ Reason string }

func (e *InsufficientStorageError) Error() string { return e.Reason }

// InsufficientStorage marks the error for the HTTP layer (507).
func (e *InsufficientStorageError) InsufficientStorage() bool { return true }

// diskGuard watches the free space of the storage path.
type diskGuard struct {
	n       *Node
	path    string
	reserve uint64

	mu        sync.Mutex
	checkedAt time.Time
	free      uint64
	statErr   error
	low       bool
}

// status returns the free bytes and whether they are below the reserve,
// read at most every diskCheckInterval; it logs when the node crosses the
// reserve either way.
func (g *diskGuard) status() (free uint64, low bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.checkedAt) < diskCheckInterval {
		return g.free, g.low
	}
	g.checkedAt = time.Now()
	f, err := freeBytes(g.path)
	if err != nil {
		if g.statErr == nil {
			g.n.logger.Warn("cannot read the free space of --storage.path; not guarding it", "path", g.path, "err", err)
		}
		g.statErr = err
		return 0, false
	}
	g.statErr, g.free = nil, f
	switch nowLow := g.reserve > 0 && f < g.reserve; {
	case nowLow && !g.low:
		g.n.logger.Error("refusing writes: free space of --storage.path is below --storage.min-free-bytes; reads go on. Free space or grow the volume: writes resume by themselves",
			"path", g.path, "free_bytes", f, "min_free_bytes", g.reserve)
	case !nowLow && g.low:
		g.n.logger.Info("taking writes again: free space of --storage.path is above --storage.min-free-bytes", "path", g.path, "free_bytes", f, "min_free_bytes", g.reserve)
	}
	g.low = g.reserve > 0 && f < g.reserve
	return g.free, g.low
}

// isLow reports whether this node is below its reserve.
func (g *diskGuard) isLow() bool {
	_, low := g.status()
	return low
}

// check returns an InsufficientStorageError while this node is below its
// reserve.
func (g *diskGuard) check() error {
	if free, low := g.status(); low {
		return &InsufficientStorageError{Reason: fmt.Sprintf("insufficient storage: node %s has %d bytes free on --storage.path, less than --storage.min-free-bytes=%d; writes are refused until there is room (reads go on)",
			g.n.name, free, g.reserve)}
	}
	return nil
}

// growsState reports whether a command of this op can make the state (and
// the log) grow much: those are refused when storage is short.
func growsState(op fsm.Op) bool {
	switch op {
	case fsm.OpPut, fsm.OpPost, fsm.OpImport, fsm.OpRestore:
		return true
	}
	return false
}

// checkMembers returns an InsufficientStorageError if a member reported,
// in its last status, that it is below its reserve. The leader asks before
// appending a write that grows the state: an entry a member cannot store
// would fill its disk.
func (n *Node) checkMembers() error {
	n.probe.mu.Lock()
	defer n.probe.mu.Unlock()
	for name, low := range n.probe.storageLow {
		if low {
			return &InsufficientStorageError{Reason: fmt.Sprintf("insufficient storage: member %s reports less free space on --storage.path than its --storage.min-free-bytes; writes are refused until there is room (reads go on)", name)}
		}
	}
	return nil
}

// WriteStatus returns why this node refuses writes that grow the state
// (its own storage or a member's is below the reserve), or nil.
func (n *Node) WriteStatus() error {
	if err := n.disk.check(); err != nil {
		return err
	}
	return n.checkMembers()
}
