package fsm

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestRestoreAllocatesOnlyWhatArrives: a 13-byte snapshot whose record
// length claims 1 GiB is refused without reserving that gigabyte (eight of
// them at once once cost a node 3 GB).
func TestRestoreAllocatesOnlyWhatArrives(t *testing.T) {
	body := protowire.AppendVarint([]byte(snapshotMagic+"\x01"), maxGroupRecord-1)
	if len(body) != 13 {
		t.Fatalf("body of %d bytes", len(body))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ValidateSnapshot(body)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("got %v, want a corrupt snapshot", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("refusing a 13-byte snapshot allocated %d bytes", grew)
	}
	s := newTestFSM()
	if err := s.Restore(bytes.NewReader(body)); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("Restore: %v", err)
	}
}
