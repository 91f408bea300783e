package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Reads that never go back in time: before a read of the pushed metrics,
// a node learns the leader's commit index (a read index) and waits until
// it has applied that far, as etcd and rqlite do for linearizable reads.
// The leader confirms it still leads with one round of heartbeats
// (VerifyLeader) per read index, and only hands out a commit index of its
// own term, so every write acknowledged anywhere before the read began is
// included. Reads that arrive while a round is under way share the next
// round: under load there is at most one round in flight per node.

// DefaultReadTimeout bounds how long a read may wait for a read index and
// for this node to apply up to it (--cluster.read-timeout).
const DefaultReadTimeout = time.Second

// readRound is one read-index request shared by every read that joined it
// before it started.
type readRound struct {
	done  chan struct{}
	index uint64 // the last command at or before the leader's commit index
	err   error
}

// readRounds queues reads for the next round.
type readRounds struct {
	mu   sync.Mutex
	next *readRound
	kick chan struct{}
}

func newReadRounds() *readRounds { return &readRounds{kick: make(chan struct{}, 1)} }

// join returns the round that starts next, and makes sure it starts.
func (rr *readRounds) join() *readRound {
	rr.mu.Lock()
	if rr.next == nil {
		rr.next = &readRound{done: make(chan struct{})}
	}
	r := rr.next
	rr.mu.Unlock()
	select {
	case rr.kick <- struct{}{}:
	default:
	}
	return r
}

// take removes the round that reads joined so far; nil when none did.
func (rr *readRounds) take() *readRound {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	r := rr.next
	rr.next = nil
	return r
}

// runReadRounds asks for one read index at a time, for the reads that
// joined while the previous one was under way.
func (n *Node) runReadRounds() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			if r := n.reads.take(); r != nil {
				r.err = &ReadUnavailableError{Reason: "node is shutting down"}
				close(r.done)
			}
			return
		case <-n.reads.kick:
		}
		r := n.reads.take()
		if r == nil {
			continue
		}
		start := time.Now()
		r.index, r.err = n.fetchReadIndex(start.Add(n.cfg.ReadTimeout))
		n.metrics.readIndexSeconds.Observe(time.Since(start).Seconds())
		close(r.done)
	}
}

// readIndex returns the index of the last command at or before the
// leader's commit index, learned after ctx's start. Errors are
// *ReadUnavailableError.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	r := n.reads.join()
	select {
	case <-r.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, &ReadUnavailableError{Reason: "no read index within the read timeout"}
	case <-n.stop:
		return 0, &ReadUnavailableError{Reason: "node is shutting down"}
	}
}

// ReadBarrier returns once this node's state reflects every write
// acknowledged, by any node, before it was called: the node learns the
// leader's commit index and waits until it has applied that far, for at
// most the read timeout (--cluster.read-timeout). The error is a
// *ReadUnavailableError saying why the node cannot serve a current read (no
// leader, cut off from it, too far behind).
func (n *Node) ReadBarrier(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReadTimeout)
	defer cancel()
	idx, err := n.readIndex(ctx)
	if err != nil {
		n.metrics.readBarrierFailures.Inc()
		return err
	}
	ch, giveUp := n.fsm.waitCh(idx)
	defer giveUp()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		n.metrics.readBarrierFailures.Inc()
		return &ReadUnavailableError{Reason: fmt.Sprintf("read index %d not applied on this node within %s", idx, n.cfg.ReadTimeout)}
	}
}

// fetchReadIndex gets a read index from the leader (itself, or over the
// command port), trying again until the deadline while there is no leader
// or the leader cannot answer yet.
func (n *Node) fetchReadIndex(deadline time.Time) (uint64, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var idx uint64
	done, reason := n.onLeader(ctx, 10*time.Millisecond, func(addr string, self bool) (bool, string) {
		var err error
		if self {
			idx, err = n.leaderReadIndex(deadline)
		} else {
			idx, err = n.askReadIndex(addr, deadline)
		}
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	switch {
	case done:
		return idx, nil
	case reason == errStopping:
		return 0, &ReadUnavailableError{Reason: reason}
	default:
		return 0, &ReadUnavailableError{Reason: "no read index from the leader within the read timeout: " + reason}
	}
}

// askReadIndex asks the leader at addr for a read index.
func (n *Node) askReadIndex(addr string, deadline time.Time) (uint64, error) {
	req := binary.AppendUvarint([]byte{methodReadIndex}, uint64(max(time.Until(deadline).Milliseconds(), 1)))
	b, err := n.rpc.call(addr, deadline, req)
	if err != nil {
		return 0, fmt.Errorf("could not reach the leader: %w", err)
	}
	reply, err := decodeApplyReply(b)
	if err != nil {
		return 0, err
	}
	if reply.code != codeOK {
		return 0, fmt.Errorf("the leader could not give a read index: %s", reply.message)
	}
	return reply.index, nil
}

// serveReadIndex answers methodReadIndex on the leader: it joins this
// node's next round, which the leader answers itself.
func (n *Node) serveReadIndex(timeoutMs uint64) applyReply {
	if n.raft.State() != raft.Leader {
		return applyReply{code: codeUnavailable, message: "this node is not the leader"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(time.Duration(timeoutMs)*time.Millisecond, n.cfg.ReadTimeout))
	defer cancel()
	idx, err := n.readIndex(ctx)
	if err != nil {
		return applyReply{code: codeUnavailable, message: err.Error()}
	}
	return applyReply{code: codeOK, index: idx}
}

// leaderReadIndex is the read index as the leader sees it: its commit
// index, once that is of its own term (until the first entry of a new
// term commits, the commit index may lag entries the previous leader
// acknowledged), confirmed by a round of heartbeats to a quorum.
func (n *Node) leaderReadIndex(deadline time.Time) (uint64, error) {
	term := n.raft.CurrentTerm()
	commit := n.raft.CommitIndex()
	if commit > 0 {
		var l raft.Log
		if err := n.stores.GetLog(commit, &l); err != nil {
			return 0, fmt.Errorf("read log entry %d: %w", commit, err)
		}
		if l.Term != term {
			return 0, errors.New("the leader has not committed an entry of its term yet")
		}
	}
	if err := n.verifyLeader(deadline); err != nil {
		return 0, err
	}
	return n.lastCommandUpTo(commit)
}

// verifyLeader confirms leadership with a quorum, waiting at most until
// the deadline (raft's VerifyLeader waits until leadership is lost).
func (n *Node) verifyLeader(deadline time.Time) error {
	f := n.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("not confirmed as the leader: %w", err)
		}
		return nil
	case <-t.C:
		return errors.New("no quorum confirmed the leader in time")
	}
}

// lastCommandUpTo returns the index of the last command entry at or
// before index. Entries that are not commands (raft's no-op at a new
// term, configuration changes, barriers) never reach the state machine,
// so a reader waits for the last command instead: the state after it is
// the state at index.
func (n *Node) lastCommandUpTo(index uint64) (uint64, error) {
	floor := n.fsm.appliedIndex()
	for i := index; i > floor; i-- {
		var l raft.Log
		if err := n.stores.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand {
			return i, nil
		}
	}
	return min(floor, index), nil
}
