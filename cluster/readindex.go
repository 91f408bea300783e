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
// The leader confirms it still leads with one round of status requests to
// the voters per read index (confirmLeadership), and only hands out a
// commit index of its own term, so every write acknowledged anywhere before the read began is
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
// acknowledged), confirmed by a quorum of voters still in its term.
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
	if err := n.confirmLeadership(term, deadline); err != nil {
		return 0, err
	}
	return n.lastCommandUpTo(commit)
}

// confirmLeadership confirms, after it was called, that this node still
// leads in term: a quorum of the voters, itself included, answers a status
// request with that term. Terms never go down, so no later term can have
// elected a leader (which needs a quorum of votes in that later term) before
// the call: every write acknowledged before it is in this leader's log.
//
// Raft's VerifyLeader is not used: it counts the answer to any heartbeat or
// append that arrives after it was called, also one sent long before (to a
// follower that stopped since, or was SIGSTOPped and resumes), so it can
// confirm a leader that a quorum has left. A status request is answered
// only after it was sent.
func (n *Node) confirmLeadership(term uint64, deadline time.Time) error {
	if n.raft.State() != raft.Leader {
		return errors.New("not the leader")
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("read the raft configuration: %w", err)
	}
	var others []raft.ServerAddress
	voters, confirmed := 0, 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if s.ID == raft.ServerID(n.name) {
			confirmed++
		} else {
			others = append(others, s.Address)
		}
	}
	quorum := voters/2 + 1
	if confirmed >= quorum {
		return nil
	}
	type answer struct {
		term uint64
		err  error
	}
	answers := make(chan answer, len(others))
	for _, addr := range others {
		go func() {
			st, err := n.statusOf(string(addr), deadline)
			answers <- answer{term: st.term, err: err}
		}()
	}
	var last error
	for range others {
		a := <-answers
		switch {
		case a.err != nil:
			last = a.err
		case a.term > term:
			return fmt.Errorf("a voter is in term %d, later than this leader's %d", a.term, term)
		case a.term == term:
			if confirmed++; confirmed >= quorum {
				return nil
			}
		}
	}
	if last != nil {
		return fmt.Errorf("not confirmed as the leader by a quorum of %d voters: %w", quorum, last)
	}
	return fmt.Errorf("not confirmed as the leader by a quorum of %d voters", quorum)
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
