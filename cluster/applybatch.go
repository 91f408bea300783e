package cluster

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// Batches of committed entries are decoded ahead of their apply.
//
// raft hands the state machine the entries committed together in one
// batch (up to MaxAppendEntries): many under load, and a whole log's worth
// when a restart replays what came after its snapshot. Verifying an
// entry's checksum and decoding its command is pure and about a fifth of
// an entry's apply; applying must be one entry at a time, in order. So
// while the applying goroutine applies entry i, helpers on the other cores
// decode the entries after it, and the applier decodes an entry itself
// when no helper has got to it yet.

// minDecodeAhead is the fewest commands in a batch that get helpers:
// below it, starting them costs about what they would save.
const minDecodeAhead = 4

// decodedEntry is a command entry's checksum verdict and decoded command.
type decodedEntry struct {
	checksumErr error
	cmd         *fsm.Command
	err         error
}

// decodeEntry verifies command entry l's checksum and decodes its command.
func decodeEntry(l *raft.Log) decodedEntry {
	if err := verifyChecksum(l); err != nil {
		return decodedEntry{checksumErr: err}
	}
	cmd, err := fsm.DecodeCommand(l.Data)
	return decodedEntry{cmd: cmd, err: err}
}

// ApplyBatch implements raft.BatchingFSM: the batch's commands are applied
// in order, as Apply applies each, decoded ahead by helpers (decodeAhead).
// Configuration entries, which raft sends too, change nothing here.
func (r *raftFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	res := make([]interface{}, len(logs))
	ahead := newDecodeAhead(logs)
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		start := time.Now()
		res[i] = r.applyDecoded(l, ahead.get(i), start)
	}
	return res
}

// decodeAhead decodes a batch's command entries, each once, on the helpers
// it starts and on the goroutine that asks for them.
type decodeAhead struct {
	logs    []*raft.Log
	next    atomic.Int64 // the next entry to be claimed for decoding
	entries []aheadEntry
}

// aheadEntry is one entry's decoding; done (nil without helpers) is closed
// once d is set.
type aheadEntry struct {
	done chan struct{}
	d    decodedEntry
}

// newDecodeAhead starts decoding logs: with helpers on the other cores if
// the batch holds at least minDecodeAhead commands.
func newDecodeAhead(logs []*raft.Log) *decodeAhead {
	a := &decodeAhead{logs: logs, entries: make([]aheadEntry, len(logs))}
	commands := 0
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			commands++
		}
	}
	helpers := runtime.GOMAXPROCS(0) - 1
	if commands < minDecodeAhead || helpers < 1 {
		return a
	}
	for i := range a.entries {
		a.entries[i].done = make(chan struct{})
	}
	for range helpers {
		go func() {
			for i := a.claim(); i >= 0; i = a.claim() {
				a.decode(i)
			}
		}()
	}
	return a
}

// claim returns the next entry to decode, or -1 when all are claimed.
func (a *decodeAhead) claim() int {
	i := int(a.next.Add(1)) - 1
	if i >= len(a.logs) {
		return -1
	}
	return i
}

// decode decodes entry i (a command; other entries have nothing to decode).
func (a *decodeAhead) decode(i int) {
	e := &a.entries[i]
	if a.logs[i].Type == raft.LogCommand {
		e.d = decodeEntry(a.logs[i])
	}
	if e.done != nil {
		close(e.done)
	}
}

// get returns entry i decoded: it decodes the entries up to i that no
// helper has claimed yet itself, then waits for i if a helper has it.
func (a *decodeAhead) get(i int) decodedEntry {
	for int(a.next.Load()) <= i {
		if j := a.claim(); j >= 0 {
			a.decode(j)
		}
	}
	if done := a.entries[i].done; done != nil {
		<-done
	}
	return a.entries[i].d
}
