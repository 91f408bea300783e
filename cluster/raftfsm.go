package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// raftFSM adapts fsm.FSM to raft.FSM and lets writers wait until a log index
// has been applied locally.
type raftFSM struct {
	state *fsm.FSM
	// metrics records each entry's apply time once the node's metrics
	// exist (raft applies entries from its start on).
	metrics atomic.Pointer[nodeMetrics]
	// logger, if set, reports each restore from a snapshot.
	logger *slog.Logger
	// starting is set while the node starts raft: a restore then is the
	// node's own snapshot, before it serves.
	starting atomic.Bool
	// lastPersist is how long the last snapshot took to write (nanoseconds;
	// 0 before the first).
	lastPersist atomic.Int64
	// lastPersistEnd is when the last snapshot was written
	// (sinceProcessStart; 0 before the first).
	lastPersistEnd atomic.Int64
	// lastCapture is the applied index of the last snapshot raft took of
	// the state, whether or not it has been written yet, or restored.
	lastCapture atomic.Uint64

	mu      sync.Mutex
	applied uint64
	waiters map[chan struct{}]uint64
}

func newRaftFSM(state *fsm.FSM) *raftFSM {
	return &raftFSM{state: state, waiters: map[chan struct{}]uint64{}}
}

// Apply implements raft.FSM.
func (r *raftFSM) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		r.advance(l.Index)
		return (*fsm.Result)(nil)
	}
	start := time.Now()
	return r.applyDecoded(l, decodeEntry(l), start)
}

// applyDecoded applies command entry l, decoded (decodeEntry), and records
// the time since start as the entry's apply stage.
func (r *raftFSM) applyDecoded(l *raft.Log, d decodedEntry, start time.Time) *fsm.Result {
	defer r.metrics.Load().observeStage(stageApply, start)
	if d.checksumErr != nil {
		// Applying it would make this node diverge. Stopping is the safe
		// way out: at the next start the storage check finds the entry
		// and the node recovers from its peers.
		panic(fmt.Sprintf("%v; refusing to apply it: restart the node to recover its storage from the peers", d.checksumErr))
	}
	res := r.state.ApplyDecoded(l.Index, d.cmd, d.err)
	r.advance(l.Index)
	return res
}

// advance records that everything up to index is applied and wakes the
// waiters that were waiting for it.
func (r *raftFSM) advance(index uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if index <= r.applied {
		return
	}
	r.applied = index
	for ch, want := range r.waiters {
		if want <= index {
			close(ch)
			delete(r.waiters, ch)
		}
	}
}

// appliedIndex returns the index of the last command applied (or of the
// snapshot restored).
func (r *raftFSM) appliedIndex() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// waitCh returns a channel closed once index has been applied, and a
// function to call when the caller gives up waiting.
func (r *raftFSM) waitCh(index uint64) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	defer r.mu.Unlock()
	if index <= r.applied {
		close(ch)
		return ch, func() {}
	}
	r.waiters[ch] = index
	return ch, func() {
		r.mu.Lock()
		delete(r.waiters, ch)
		r.mu.Unlock()
	}
}

// Snapshot implements raft.FSM. It only captures group pointers.
func (r *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	snap := r.state.Snapshot()
	r.lastCapture.Store(snap.AppliedIndex())
	return &fsmSnapshot{snap: snap, took: &r.lastPersist, ended: &r.lastPersistEnd}, nil
}

// Restore implements raft.FSM. A restore while the node starts (before it
// serves) runs with the collector's target raised (restoregc.go); a
// snapshot sent by the leader to a serving node does not.
func (r *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	start := time.Now()
	if r.starting.Load() {
		defer raiseGCForRestore()()
	}
	if err := r.state.Restore(rc); err != nil {
		return fmt.Errorf("restore state from snapshot: %w", err)
	}
	took := time.Since(start)
	if r.logger != nil {
		r.logger.Info("restored the state from a snapshot", "groups", r.state.Len(), "series", r.state.Series(),
			"applied_index", r.state.AppliedIndex(), "took", took.Round(time.Millisecond))
	}
	// Reading a snapshot takes about as long as writing it: the estimate
	// of the snapshot cadence until this node writes one.
	r.lastPersist.CompareAndSwap(0, int64(took))
	r.lastCapture.Store(r.state.AppliedIndex()) // the snapshot's index: the log after it is replayed
	r.advance(r.state.AppliedIndex())
	return nil
}

type fsmSnapshot struct {
	snap *fsm.Snapshot
	// took receives how long a successful Persist took, and ended when it
	// ended (sinceProcessStart).
	took, ended *atomic.Int64
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	if _, err := s.snap.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot: %w", err)
	}
	s.took.Store(int64(time.Since(start)))
	s.ended.Store(int64(sinceProcessStart()))
	return nil
}

// processStart is when this process started, near enough: durations from
// it read the monotonic clock, which a step of the wall clock does not move.
var processStart = time.Now()

// sinceProcessStart is the time since processStart.
func sinceProcessStart() time.Duration { return time.Since(processStart) }

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}
