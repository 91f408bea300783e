package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The storage check reads every snapshot through its CRC before raft starts
// (checkSnapshots), and raft then reads the newest through its CRC again
// before restoring it: at 100,000 groups two passes of 130 MB through
// CRC-64 on one core, about 0.1 s each, before a restart can serve.
// snapshotStore spares the second: the first open of a snapshot the check
// verified, while its state file is still the one verified (same size and
// modification time), reads it without the CRC pass; the restore still
// checks the state machine's own CRC-32 of the snapshot as it reads it.
// Every other open, as when the leader sends a snapshot to a follower, is
// raft's. Measured on one node's storage of 100,000 groups: start to the
// restore's beginning 0.32 -> 0.15 s.

// snapshotDirName is where raft's file snapshot store keeps its snapshots,
// under the directory it is given.
const snapshotDirName = "snapshots"

// snapshotReadBuffer is the read buffer of a snapshot opened for a restore
// (raft's own is 4 KiB).
const snapshotReadBuffer = 1 << 20

// fileStamp tells whether a file is still the one that was read.
type fileStamp struct {
	size int64
	mod  time.Time
}

// stampOf returns path's stamp.
func stampOf(path string) (fileStamp, error) {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: info.Size(), mod: info.ModTime()}, nil
}

// snapshotStatePath is the state file of snapshot id under raftDir (raft's
// file snapshot store's layout; snapshotMetaPath its metadata).
func snapshotStatePath(raftDir, id string) string {
	return filepath.Join(raftDir, snapshotDirName, id, "state.bin")
}

// snapshotMetaPath is the metadata file of snapshot id under raftDir.
func snapshotMetaPath(raftDir, id string) string {
	return filepath.Join(raftDir, snapshotDirName, id, "meta.json")
}

// snapshotStore is raft's file snapshot store whose first open of a
// snapshot verified at start skips the CRC pass.
type snapshotStore struct {
	*raft.FileSnapshotStore
	raftDir string

	mu       sync.Mutex
	verified map[string]fileStamp // by snapshot ID, until opened once
}

// newSnapshotStore opens raft's file snapshot store in raftDir, retaining
// retain snapshots; verified holds the snapshots whose CRC the storage
// check verified, with their state files' stamps.
func newSnapshotStore(raftDir string, retain int, logger hclog.Logger, verified map[string]fileStamp) (*snapshotStore, error) {
	fs, err := raft.NewFileSnapshotStoreWithLogger(raftDir, retain, logger)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return &snapshotStore{FileSnapshotStore: fs, raftDir: raftDir, verified: verified}, nil
}

// Open implements raft.SnapshotStore.
func (s *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	stamp, ok := s.verified[id]
	delete(s.verified, id)
	s.mu.Unlock()
	if !ok {
		return s.FileSnapshotStore.Open(id)
	}
	meta, rc, err := s.openVerified(id, stamp)
	if err != nil {
		// Changed since the check, or unreadable: raft's open reads it
		// through its CRC and reports what is wrong.
		return s.FileSnapshotStore.Open(id)
	}
	return meta, rc, nil
}

// openVerified opens snapshot id without a CRC pass if its state file
// still has the stamp it had when it was verified.
func (s *snapshotStore) openVerified(id string, stamp fileStamp) (*raft.SnapshotMeta, io.ReadCloser, error) {
	statePath := snapshotStatePath(s.raftDir, id)
	if now, err := stampOf(statePath); err != nil || now != stamp {
		return nil, nil, fmt.Errorf("snapshot %s changed since it was verified", id)
	}
	b, err := os.ReadFile(snapshotMetaPath(s.raftDir, id))
	if err != nil {
		return nil, nil, err
	}
	var meta raft.SnapshotMeta
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, nil, fmt.Errorf("snapshot %s metadata: %w", id, err)
	}
	fh, err := os.Open(statePath)
	if err != nil {
		return nil, nil, err
	}
	return &meta, &snapshotFile{Reader: bufio.NewReaderSize(fh, snapshotReadBuffer), f: fh}, nil
}

// snapshotFile reads a snapshot's state file through a buffer.
type snapshotFile struct {
	*bufio.Reader
	f *os.File
}

// Close closes the file.
func (f *snapshotFile) Close() error { return f.f.Close() }
