package cluster

import (
	"sync"

	"github.com/hashicorp/raft"
)

// Pipelined replication without hashicorp/raft's deadlock.
//
// raft's network pipeline hands each decoded response to raft's reader
// (pipelineDecode) over an unbuffered channel (MaxRPCsInFlight 2). When a
// follower rejects an append, that reader returns; the pipeline's decoder
// then waits forever to hand over the next response, so the next send
// waits forever to hand its request to the decoder, and the replication
// loop holding the pipeline never closes it: replication to that follower
// stops (heartbeats go on, so no election heals it) and raft.Shutdown
// hangs. The chaos tests found it after partitions healed; upstream
// reports: hashicorp/raft#612, grafana/pyroscope#5518.
//
// drainedPipeline takes the responses from the decoder as they come and
// queues them for raft's reader, so the decoder never waits for raft: a
// send after the reader returned goes out and is answered, the replication
// loop sees the reader's end and closes the pipeline, and raft falls back
// to plain AppendEntries until the follower is caught up. The queue holds
// at most the responses of the sends made after the reader returned: the
// replication loop stops at its next turn.
type drainedPipeline struct {
	raft.AppendPipeline
	out       chan raft.AppendFuture
	stop      chan struct{}
	closeOnce sync.Once
}

func newDrainedPipeline(p raft.AppendPipeline) *drainedPipeline {
	d := &drainedPipeline{AppendPipeline: p, out: make(chan raft.AppendFuture), stop: make(chan struct{})}
	go d.relay()
	return d
}

// relay moves decoded responses, in order, from the pipeline to raft's
// reader, never blocking the pipeline's decoder.
func (d *drainedPipeline) relay() {
	in := d.AppendPipeline.Consumer()
	var queue []raft.AppendFuture
	for {
		var out chan raft.AppendFuture
		var next raft.AppendFuture
		if len(queue) > 0 {
			out, next = d.out, queue[0]
		}
		select {
		case f := <-in:
			queue = append(queue, f)
		case out <- next:
			queue[0] = nil
			queue = queue[1:]
		case <-d.stop:
			return
		}
	}
}

// Consumer implements raft.AppendPipeline: the decoded responses, in the
// order of the sends.
func (d *drainedPipeline) Consumer() <-chan raft.AppendFuture { return d.out }

// Close implements raft.AppendPipeline.
func (d *drainedPipeline) Close() error {
	d.closeOnce.Do(func() { close(d.stop) })
	return d.AppendPipeline.Close()
}
