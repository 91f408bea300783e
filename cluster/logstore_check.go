package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// checkWAL verifies the log store in dir: wal-meta.db (bolt's own check),
// every segment file at least as long as it was preallocated (shorter: it
// was truncated), then every entry, read through raft-wal, decodable, at
// its index and with its command checksum. It fills rep.stable.
//
// raft-wal checks the CRC of the last batch written and drops that batch
// when it does not match (a write torn by a crash); damage inside earlier
// batches is found by the command checksums.
func checkWAL(dir string, rep *storageReport) (first, last uint64, problem *corruption, err error) {
	if !exists(dir) {
		return 0, 0, nil, nil
	}
	segments, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		return 0, 0, nil, fmt.Errorf("list log segments: %w", err)
	}
	meta := filepath.Join(dir, metadb.FileName)
	if !exists(meta) {
		if len(segments) > 0 {
			return 0, 0, corrupt("%s holds log segments but no %s", dir, metadb.FileName), nil
		}
		return 0, 0, nil, nil // created, never written
	}
	guarded(func() { problem, err = checkBoltPages(meta) }, func(p any) {
		problem = corrupt("reading %s failed: %v", meta, p)
	})
	if err != nil || problem != nil {
		return 0, 0, problem, err
	}
	for _, seg := range segments {
		info, err := os.Stat(seg)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("check log segment: %w", err)
		}
		if info.Size() > 0 && info.Size() < walSegmentSize { // empty: see preallocateEmptySegments
			return 0, 0, corrupt("log segment %s is %d bytes long, shorter than the %d it was created with: the file was truncated", seg, info.Size(), walSegmentSize), nil
		}
	}
	guarded(func() { first, last, problem, err = readWAL(dir, rep) }, func(p any) {
		problem = corrupt("reading the log in %s failed: %v", dir, p)
	})
	return first, last, problem, err
}

// checkBoltPages runs bolt's consistency check (every page) on path.
func checkBoltPages(path string) (*corruption, error) {
	db, problem, err := openBoltReadOnly(path)
	if db == nil {
		return problem, err
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		problem = firstBoltProblem(tx, path)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", path, err)
	}
	return problem, nil
}

// firstBoltProblem returns the first fault bolt's consistency check finds.
func firstBoltProblem(tx *bbolt.Tx, path string) *corruption {
	for cerr := range tx.Check() {
		return corrupt("bolt consistency check of %s: %v", path, cerr)
	}
	return nil
}

// readWAL opens the log store in dir and verifies every entry.
func readWAL(dir string, rep *storageReport) (first, last uint64, problem *corruption, err error) {
	w, err := openWALUnchecked(dir, hclog.NewNullLogger())
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return 0, 0, nil, err
		}
		return 0, 0, corrupt("%v", err), nil
	}
	defer w.Close()
	if rep.stable, err = readStable(w); err != nil {
		return 0, 0, corrupt("the term and vote in %s cannot be read: %v", dir, err), nil
	}
	if first, err = w.FirstIndex(); err == nil {
		last, err = w.LastIndex()
	}
	if err != nil {
		return 0, 0, corrupt("the raft log in %s cannot be read: %v", dir, err), nil
	}
	if first == 0 {
		// Empty: raft-wal keeps reporting the last index of a log that was
		// compacted away entirely (raft's recovery does that).
		return 0, 0, nil, nil
	}
	rep.tail = &logTail{}
	return first, last, verifyEntries(w, dir, first, last, rep.tail), nil
}
