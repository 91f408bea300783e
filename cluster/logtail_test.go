package cluster

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The tail keeps the newest consecutive entries within its bound, and
// drops those a snapshot holds.
func TestLogTailKeepsTheNewestEntriesWithinItsBound(t *testing.T) {
	big := make([]byte, maxLogTailBytes/4)
	var tail logTail
	for i := uint64(1); i <= 10; i++ {
		tail.add(&raft.Log{Index: i, Data: big})
	}
	if tail.first != 7 || tail.last() != 10 || tail.bytes != maxLogTailBytes {
		t.Fatalf("held %d to %d (%d bytes), want the newest four, 7 to 10", tail.first, tail.last(), tail.bytes)
	}
	var l raft.Log
	if tail.get(6, &l) || !tail.get(8, &l) || l.Index != 8 {
		t.Fatalf("get: %+v", l.Index)
	}
	tail.after(8)
	if tail.first != 9 || tail.last() != 10 || tail.bytes != maxLogTailBytes/2 {
		t.Fatalf("after 8: held %d to %d (%d bytes)", tail.first, tail.last(), tail.bytes)
	}
	tail.add(&raft.Log{Index: 12}) // a gap: a new run
	if tail.first != 12 || tail.last() != 12 || tail.bytes != 0 {
		t.Fatalf("after a gap: held %d to %d", tail.first, tail.last())
	}
	tail.after(20)
	if tail.last() != 0 || tail.overlaps(0, 100) {
		t.Fatal("a snapshot past the tail left entries")
	}
}

// A restart's raft reads the entries after the snapshot, as the storage
// check read them, from the tail; appending after it leaves it, and a
// delete or an overwrite of its entries (a follower truncating a conflict)
// reads the store again, as does dropping it once the node is ready.
func TestLogStoreServesTheTailTheCheckRead(t *testing.T) {
	wdir := filepath.Join(t.TempDir(), walSubdir)
	s, err := openWAL(wdir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 40; i++ {
		data := []byte(fmt.Sprintf("entry %d", i))
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: data, Extensions: commandChecksum(data)})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep := &storageReport{}
	if first, last, problem, err := readWAL(wdir, rep); err != nil || problem != nil || first != 1 || last != 40 {
		t.Fatalf("check: %d to %d, %v %v", first, last, problem, err)
	}
	rep.tail.after(30) // the newest snapshot's index
	if rep.tail.first != 31 || rep.tail.last() != 40 {
		t.Fatalf("tail %d to %d, want 31 to 40", rep.tail.first, rep.tail.last())
	}
	// Mark the kept entries: only a read served by the tail returns them.
	for i := range rep.tail.logs {
		rep.tail.logs[i].Data = []byte("from the tail")
	}

	if s, err = openWAL(wdir, hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.keepTail(rep.tail)
	read := func(i uint64) string {
		t.Helper()
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if l.Index != i {
			t.Fatalf("entry %d read as %d", i, l.Index)
		}
		return string(l.Data)
	}
	if read(30) != "entry 30" || read(31) != "from the tail" || read(40) != "from the tail" {
		t.Fatal("the entries after the snapshot were not served from the tail")
	}
	if err := s.StoreLogs([]*raft.Log{{Index: 41, Term: 2, Type: raft.LogNoop}}); err != nil {
		t.Fatal(err)
	}
	if read(35) != "from the tail" {
		t.Fatal("an append after the tail dropped it")
	}
	if err := s.DeleteRange(38, 41); err != nil {
		t.Fatal(err)
	}
	if read(35) != "entry 35" {
		t.Fatal("a delete of the tail's entries left it")
	}

	s.keepTail(rep.tail)
	s.dropTail()
	if read(35) != "entry 35" {
		t.Fatal("a dropped tail still served reads")
	}
	s.keepTail(rep.tail)
	if err := s.StoreLogs([]*raft.Log{{Index: 38, Term: 3, Type: raft.LogNoop}}); err != nil {
		t.Fatal(err)
	}
	if read(35) != "entry 35" {
		t.Fatal("an overwrite of the tail's entries left it")
	}
}
