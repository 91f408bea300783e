package cluster

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// writeSnapshots writes snapshots with the given states through raft's
// file snapshot store in dir and returns their IDs, oldest first.
func writeSnapshots(t *testing.T, dir string, states ...[]byte) []string {
	t.Helper()
	store, err := raft.NewFileSnapshotStoreWithLogger(dir, len(states), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport("")
	conf := raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "127.0.0.1:1"}}}
	var ids []string
	for i, state := range states {
		sink, err := store.Create(raft.SnapshotVersionMax, uint64(100*(i+1)), 3, conf, 1, trans)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Write(state); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sink.ID())
	}
	return ids
}

// readSnapshot opens snapshot id in store and reads it whole.
func readSnapshot(store raft.SnapshotStore, id string) (*raft.SnapshotMeta, []byte, error) {
	meta, rc, err := store.Open(id)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return meta, b, err
}

// The first open of a snapshot the storage check verified reads what raft's
// own open reads, with the same metadata, without a second CRC pass; every
// later open, and one of a file changed since the check, is raft's, CRC
// and all.
func TestSnapshotVerifiedAtStartIsReadOnceWithoutASecondCRCPass(t *testing.T) {
	dir := t.TempDir()
	state := bytes.Repeat([]byte("group record "), 1000)
	ids := writeSnapshots(t, dir, []byte("older state"), state)
	newest := ids[1]

	index, verified, problem := checkSnapshots(dir)
	if problem != nil {
		t.Fatalf("intact snapshots: %v", problem)
	}
	if index != 200 || len(verified) != 2 {
		t.Fatalf("newest index %d, verified %v; want 200 and both snapshots", index, verified)
	}
	plain, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	wantMeta, wantState, err := readSnapshot(plain, newest)
	if err != nil {
		t.Fatal(err)
	}

	store, err := newSnapshotStore(dir, 2, hclog.NewNullLogger(), verified)
	if err != nil {
		t.Fatal(err)
	}
	// Damage the newest snapshot behind the store's back, keeping its
	// stamp: only a read without the CRC pass can return it.
	path := snapshotStatePath(dir, newest)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(state)
	damaged[len(damaged)/2] ^= 0xff
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	meta, got, err := readSnapshot(store, newest)
	if err != nil {
		t.Fatalf("first open of a verified snapshot: %v", err)
	}
	if !bytes.Equal(got, damaged) || bytes.Equal(wantState, damaged) {
		t.Fatal("the first open of a verified snapshot did not read the file as it is without a CRC pass")
	}
	if meta.ID != wantMeta.ID || meta.Index != wantMeta.Index || meta.Term != wantMeta.Term || meta.Size != wantMeta.Size ||
		meta.ConfigurationIndex != wantMeta.ConfigurationIndex || len(meta.Configuration.Servers) != 1 ||
		meta.Configuration.Servers[0] != wantMeta.Configuration.Servers[0] {
		t.Fatalf("metadata %+v, raft's %+v", meta, wantMeta)
	}

	// Opened once: the next open is raft's, which finds the damage.
	if _, _, err := readSnapshot(store, newest); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("second open of a damaged snapshot: %v, want raft's CRC mismatch", err)
	}

	// A file changed since the check (its stamp differs) is raft's to open.
	older := snapshotStatePath(dir, ids[0])
	if err := os.WriteFile(older, []byte("older stat!"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := verified[ids[0]].mod.Add(time.Second) // same size, a coarse clock may not tell
	if err := os.Chtimes(older, later, later); err != nil {
		t.Fatal(err)
	}
	store, err = newSnapshotStore(dir, 2, hclog.NewNullLogger(), map[string]fileStamp{ids[0]: verified[ids[0]]})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := readSnapshot(store, ids[0]); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("open of a snapshot changed since the check: %v, want raft's CRC mismatch", err)
	}

	// And the check finds both damaged snapshots, whichever it reads first.
	if _, _, problem := checkSnapshots(dir); problem == nil {
		t.Fatal("the check passed damaged snapshots")
	}
}
