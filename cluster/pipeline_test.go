package cluster

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestPipelineSurvivesARejectedAppend replays, on two real network
// transports over loopback, what raft's pipelined replication does when a
// follower rejects an append: its reader takes the rejection and returns,
// the replication loop sends once or twice more before it notices, then
// closes the pipeline. With raft's pipeline as it is, the second send after
// the rejection waits forever and Close is never reached; through
// drainedPipeline every send returns and Close does.
func TestPipelineSurvivesARejectedAppend(t *testing.T) {
	follower, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	leaderNet, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer leaderNet.Close()
	go func() { // the follower rejects every append (its log lacks the previous entry)
		for rpc := range follower.Consumer() {
			req, ok := rpc.Command.(*raft.AppendEntriesRequest)
			if !ok {
				rpc.Respond(nil, nil)
				continue
			}
			rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: false, NoRetryBackoff: true}, nil)
		}
	}()

	leader := &raftTransport{NetworkTransport: leaderNet, recovering: &atomic.Bool{}}
	p, err := leader.AppendEntriesPipeline("f", follower.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	send := func(i int) error {
		_, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 2, PrevLogEntry: uint64(i)}, &raft.AppendEntriesResponse{})
		return err
	}
	if err := send(0); err != nil {
		t.Fatal(err)
	}
	first := <-p.Consumer()
	if first.Error() != nil || first.Response().Success {
		t.Fatalf("first response: %v %+v", first.Error(), first.Response())
	}
	// The reader has returned; the replication loop sends three more times
	// before it closes the pipeline.
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= 3; i++ {
			if err := send(i); err != nil {
				done <- err
				return
			}
		}
		done <- p.Close()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sending after the rejection, then closing: %v", err)
		}
	case <-time.After(20 * time.Second): // far beyond the transport's 5 s timeout
		t.Fatal("the pipeline deadlocked: a send after the rejected append never returned")
	}
}
