package cluster

import (
	"errors"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// errRecovering answers vote requests while this node recovers its state.
var errRecovering = errors.New("this node is recovering its raft state from its peers and does not vote")

// raftTransport is raft's network transport with two changes.
//
// Replication is pipelined through drainedPipeline (pipeline.go), which
// avoids the deadlock of hashicorp/raft's pipeline when a follower rejects
// an append.
//
// While recovering is set, the node takes no part in elections: it sends
// no vote requests and answers the ones it gets (and leadership-transfer
// requests) with an error. A node that lost its log must not vote before
// it holds every entry again, or its vote could elect a leader lacking
// entries that were committed with its help.
type raftTransport struct {
	*raft.NetworkTransport
	recovering *atomic.Bool
	consumer   chan raft.RPC
}

// newRaftTransport wraps t. When the node is not recovering as it starts
// (its storage was intact), incoming RPCs go straight to raft.
func newRaftTransport(t *raft.NetworkTransport, recovering *atomic.Bool, stop <-chan struct{}) *raftTransport {
	rt := &raftTransport{NetworkTransport: t, recovering: recovering}
	if recovering.Load() {
		rt.consumer = make(chan raft.RPC)
		go rt.filter(stop)
	}
	return rt
}

func (t *raftTransport) filter(stop <-chan struct{}) {
	in := t.NetworkTransport.Consumer()
	for {
		select {
		case <-stop:
			return
		case rpc := <-in:
			if t.recovering.Load() {
				switch rpc.Command.(type) {
				case *raft.RequestVoteRequest, *raft.RequestPreVoteRequest, *raft.TimeoutNowRequest:
					rpc.Respond(nil, errRecovering)
					continue
				}
			}
			select {
			case t.consumer <- rpc:
			case <-stop:
				return
			}
		}
	}
}

// Consumer implements raft.Transport.
func (t *raftTransport) Consumer() <-chan raft.RPC {
	if t.consumer != nil {
		return t.consumer
	}
	return t.NetworkTransport.Consumer()
}

// AppendEntriesPipeline implements raft.Transport: raft's pipeline, whose
// responses are drained as they come (drainedPipeline).
func (t *raftTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return newDrainedPipeline(p), nil
}

// RequestVote implements raft.Transport.
func (t *raftTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if t.recovering.Load() {
		return errRecovering
	}
	return t.NetworkTransport.RequestVote(id, target, args, resp)
}

// RequestPreVote implements raft.WithPreVote.
func (t *raftTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if t.recovering.Load() {
		return errRecovering
	}
	return t.NetworkTransport.RequestPreVote(id, target, args, resp)
}
