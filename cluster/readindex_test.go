package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestReadBarrierShowsEveryAcknowledgedWrite writes through one node and
// reads through another right after the acknowledgement: after the read
// barrier, the reader shows the write every time, on followers as on the
// leader, although followers learn of commits only later on their own.
func TestReadBarrierShowsEveryAcknowledgedWrite(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.waitReadyAll()
	writers := []*testNode{c.byName(leader), c.anyBut(leader)}
	for i := 1; i <= 60; i++ {
		writer := writers[i%2]
		if res := push(t, writer.Node, int64(1_700_000_000+i)*1e9, fmt.Sprintf("counter %d\n", i), map[string]string{"job": "rb"}); res.Err != nil {
			t.Fatal(res.Err)
		}
		for _, reader := range c.nodes {
			if reader == writer {
				continue
			}
			if err := reader.ReadBarrier(context.Background()); err != nil {
				t.Fatalf("read barrier on %s: %v", reader.name, err)
			}
			if got := exposition(t, reader.state); !strings.Contains(got, fmt.Sprintf(`counter{instance="",job="rb"} %d`, i)) {
				t.Fatalf("write %d acknowledged by %s, then read on %s after the barrier:\n%s", i, writer.name, reader.name, got)
			}
		}
	}
}

// TestReadBarrierRefusesWithoutQuorum: a node cut off from the majority
// cannot make a read current; it says so within the read timeout instead
// of serving its old state as current.
func TestReadBarrierRefusesWithoutQuorum(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.waitReadyAll()
	survivor := c.anyBut(leader)
	if err := survivor.ReadBarrier(context.Background()); err != nil {
		t.Fatalf("healthy cluster: %v", err)
	}
	for _, n := range c.nodes {
		if n != survivor {
			if err := n.Shutdown(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for attempt := 0; attempt < 3; attempt++ {
		start := time.Now()
		err := survivor.ReadBarrier(context.Background())
		var u *ReadUnavailableError
		if !errors.As(err, &u) {
			t.Fatalf("read without quorum: want ReadUnavailableError, got %v", err)
		}
		if d := time.Since(start); d > survivor.cfg.ReadTimeout+time.Second {
			t.Fatalf("refused after %v, read timeout %v", d, survivor.cfg.ReadTimeout)
		}
	}
	var m dto.Metric
	if err := survivor.metrics.readBarrierFailures.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 3 {
		t.Fatalf("%s = %v, want 3", readsRefusedName, got)
	}
}

// TestReadIndexIsTheLastCommand: entries that are not commands never
// reach the state machine, so the read index is the last command at or
// before the commit index, which a reader can wait for.
func TestReadIndexIsTheLastCommand(t *testing.T) {
	c := startCluster(t, 1)
	c.waitReadyAll()
	n := c.nodes[0]
	res := push(t, n.Node, 1_700_000_000e9, "m 1\n", map[string]string{"job": "a"})
	// Entries that are not commands follow the push: a barrier.
	if err := n.raft.Barrier(time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if n.raft.CommitIndex() <= res.Index {
		t.Fatalf("commit index %d, push at %d: no entry after the push", n.raft.CommitIndex(), res.Index)
	}
	idx, err := n.leaderReadIndex(time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if idx != res.Index {
		t.Fatalf("read index %d, want the push's index %d", idx, res.Index)
	}
}
