package cluster

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// fillPastSegment appends entries of 64 KiB to s until more than two
// segments' worth is written, in batches larger than a segment (as the
// migration copies), and returns the last index.
func fillPastSegment(t *testing.T, s raft.LogStore, from uint64) uint64 {
	t.Helper()
	data := bytes.Repeat([]byte{'x'}, 64<<10)
	idx := from
	for written := 0; written <= 2*walSegmentSize; {
		batch := make([]*raft.Log, 0, 80)
		for range 80 {
			batch = append(batch, &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data})
			idx++
			written += len(data)
		}
		if err := s.StoreLogs(batch); err != nil {
			t.Fatalf("store logs up to %d: %v", idx-1, err)
		}
	}
	return idx - 1
}

// TestLogStoreTakesAppendsAfterAStopDuringRotation: a batch that fills a
// segment seals it, and raft-wal moves to the next segment in the
// background. A log store closed before that move (Close waits for it) or
// left by a process killed then (rebuilt at the next open) must take
// appends when opened again, with every entry kept.
func TestLogStoreTakesAppendsAfterAStopDuringRotation(t *testing.T) {
	for _, graceful := range []bool{true, false} {
		dir := t.TempDir()
		s, err := openWAL(dir, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		last := fillPastSegment(t, s, 1)
		if graceful {
			err = s.Close()
		} else {
			// raft-wal's own Close skips a pending rotation, as a crash would.
			err = s.WAL.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		s, err = openWAL(dir, hclog.NewNullLogger())
		if err != nil {
			t.Fatalf("graceful=%v: reopen: %v", graceful, err)
		}
		if err := s.StoreLogs([]*raft.Log{{Index: last + 1, Term: 1, Type: raft.LogCommand, Data: []byte("after")}}); err != nil {
			t.Fatalf("graceful=%v: append after reopening: %v", graceful, err)
		}
		var l raft.Log
		if err := s.GetLog(last+1, &l); err != nil || string(l.Data) != "after" {
			t.Fatalf("graceful=%v: read back: %v %q", graceful, err, l.Data)
		}
		if bad := verifyEntries(s, dir, 1, last, nil); bad != nil {
			t.Fatalf("graceful=%v: %v", graceful, bad)
		}
		s.Close()
	}
}

// TestMigrationOfALargeRaftDBWithoutAVote: an earlier build's raft.db
// holding more than a segment of log and a term but no vote (a node that
// joined after the last election) migrates whole, and the new store takes
// appends.
func TestMigrationOfALargeRaftDBWithoutAVote(t *testing.T) {
	raftDir := t.TempDir()
	old, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, legacyLogFile)})
	if err != nil {
		t.Fatal(err)
	}
	last := fillPastSegment(t, old, 5)
	if err := old.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	old.Close()

	if err := migrateLegacyLog(raftDir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(raftDir, legacyLogFile)) {
		t.Fatal("raft.db is still there")
	}
	s, err := openWAL(filepath.Join(raftDir, walSubdir), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("term after the migration: %d %v", term, err)
	}
	if first, _ := s.FirstIndex(); first != 5 {
		t.Fatalf("first index %d, want 5", first)
	}
	if got := verifyEntries(s, "migrated", 5, last, nil); got != nil {
		t.Fatal(got)
	}
	if err := s.StoreLogs([]*raft.Log{{Index: last + 1, Term: 7, Type: raft.LogCommand, Data: []byte("after")}}); err != nil {
		t.Fatalf("append after the migration: %v", err)
	}
}

// TestEmptyTailSegmentIsNotTakenForDamage: raft-wal creates a segment file
// and then preallocates it; a crash or a full disk in between leaves an
// empty file, which the check must accept and the next open preallocate.
func TestEmptyTailSegmentIsNotTakenForDamage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), walSubdir)
	s, err := openWAL(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	// Batches of one segment each: every one fills and seals the tail, so
	// the last leaves a fresh tail with no entries.
	data := bytes.Repeat([]byte{'y'}, walSegmentSize)
	var last uint64
	for i := uint64(1); i <= 2; i++ {
		if err := s.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: data}}); err != nil {
			t.Fatal(err)
		}
		last = i
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tail := newestSegment(t, filepath.Dir(dir))
	if err := os.Truncate(tail, 0); err != nil {
		t.Fatal(err)
	}
	rep := &storageReport{}
	if _, got, problem, err := checkWAL(dir, rep); err != nil || problem != nil || got != last {
		t.Fatalf("check of a store with an empty tail: last=%d problem=%v err=%v", got, problem, err)
	}
	s, err = openWAL(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.StoreLogs([]*raft.Log{{Index: last + 1, Term: 1, Type: raft.LogCommand, Data: []byte("z")}}); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(tail); err != nil || info.Size() < walSegmentSize {
		t.Fatalf("the empty tail was not preallocated: %v %v", info.Size(), err)
	}
}

// TestVoteRecordAheadOfTheLogStoreRaisesTheTerm: when the vote record holds
// a higher term than an intact log store (the store was replaced or went
// back in time), the node keeps the record's term and vote: a term never
// goes down, so the node cannot vote twice in one.
func TestVoteRecordAheadOfTheLogStoreRaisesTheTerm(t *testing.T) {
	dir := t.TempDir()
	n, _ := startNode(t, dir)
	push(t, n, 1e9, "a 1\n", map[string]string{"job": "a"})
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ahead := map[string][]byte{
		"CurrentTerm":  binary.BigEndian.AppendUint64(nil, 50),
		"LastVoteTerm": binary.BigEndian.AppendUint64(nil, 50),
		"LastVoteCand": []byte("someone-else"),
	}
	if err := writeVoteRecord(filepath.Join(dir, "raft", voteRecordFile), ahead); err != nil {
		t.Fatal(err)
	}
	n, state := startNode(t, dir)
	defer n.Shutdown()
	waitFor(t, "the node leads again", 20*time.Second, func() bool { return n.Ready() == nil })
	term, err := n.stores.GetUint64([]byte("CurrentTerm"))
	if err != nil || term <= 50 {
		t.Fatalf("term after the restart: %d %v (want above the record's 50)", term, err)
	}
	if len(state.Groups()) != 1 {
		t.Fatalf("groups after the restart: %d", len(state.Groups()))
	}
	rec, err := readVoteRecord(filepath.Join(dir, "raft", voteRecordFile))
	if err != nil || stableTerm(rec) != term {
		t.Fatalf("vote record term %d, store %d: %v", stableTerm(rec), term, err)
	}
}
