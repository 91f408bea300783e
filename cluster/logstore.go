package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/migrate"
	"go.etcd.io/bbolt"
)

// The raft log and stable store live in <storage.path>/raft/wal, a
// hashicorp/raft-wal directory: append-only segment files, one write and
// one fsync per batch of entries, and a small bolt file (wal-meta.db) for
// the segment list and raft's term and vote. Builds before it kept both in
// raft/raft.db (raft-boltdb), which a node migrates on its first start.
const (
	walSubdir = "wal"
	// legacyLogFile is the raft-boltdb file of earlier builds.
	legacyLogFile = "raft.db"
	// walSegmentSize is the size each segment file is preallocated to.
	// Small enough that a new segment fits in a small free-space reserve
	// (--storage.min-free-bytes, tested on 24 MiB volumes), large enough
	// that a segment holds thousands of pushes; a segment shorter than
	// this on disk was truncated (checkWAL).
	walSegmentSize = 4 << 20
)

// walStore is raft-wal's log and stable store with a Close that first
// waits for a segment change in progress, and reads of the log's tail served
// from what the storage check read until the node is ready (logtail.go).
type walStore struct {
	*wal.WAL
	tail atomic.Pointer[logTail]
}

// keepTail serves reads of t's entries from t until dropTail or a write
// that could change them.
func (s *walStore) keepTail(t *logTail) {
	if t != nil && len(t.logs) > 0 {
		s.tail.Store(t)
	}
}

// dropTail reads every entry from the store again.
func (s *walStore) dropTail() { s.tail.Store(nil) }

// GetLog implements raft.LogStore.
func (s *walStore) GetLog(index uint64, out *raft.Log) error {
	if t := s.tail.Load(); t != nil && t.get(index, out) {
		return nil
	}
	return s.WAL.GetLog(index, out)
}

// StoreLog implements raft.LogStore.
func (s *walStore) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs implements raft.LogStore. Appending after the tail leaves it;
// anything else that reaches its entries drops it (raft-wal refuses such
// writes anyway, after a DeleteRange that drops it first).
func (s *walStore) StoreLogs(logs []*raft.Log) error {
	if t := s.tail.Load(); t != nil && len(logs) > 0 && logs[0].Index <= t.last() {
		s.dropTail()
	}
	return s.WAL.StoreLogs(logs)
}

// DeleteRange implements raft.LogStore: deleting entries of the tail drops
// it.
func (s *walStore) DeleteRange(lo, hi uint64) error {
	if t := s.tail.Load(); t != nil && t.overlaps(lo, hi) {
		s.dropTail()
	}
	return s.WAL.DeleteRange(lo, hi)
}

// Close waits for a segment change in progress, then closes the log store
// (raft-wal v0.4.2 closes its metadata file too). raft-wal moves to a new
// segment in the background after a write fills one; closed before that,
// the full segment would stay the tail and refuse every append (see
// repairSealedTail for a crash at that moment).
func (s *walStore) Close() error {
	if last, err := s.LastIndex(); err == nil {
		// A no-op delete past the end waits for the segment change.
		_ = s.DeleteRange(last+1, last+1)
	}
	return s.WAL.Close()
}

// openWAL opens (creating if need be) the log store in dir.
func openWAL(dir string, logger hclog.Logger) (*walStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create raft log directory: %w", err)
	}
	if err := walUnlocked(dir); err != nil {
		return nil, err
	}
	if err := preallocateEmptySegments(dir); err != nil {
		return nil, err
	}
	if err := repairSealedTail(dir, logger); err != nil {
		return nil, err
	}
	return openWALUnchecked(dir, logger)
}

// copyLogStore creates a log store in dir holding src's entries and the
// term and vote of stable, and closes it.
func copyLogStore(dir string, src raft.LogStore, stable raft.StableStore) error {
	dst, err := openWAL(dir, hclog.NewNullLogger())
	if err != nil {
		return err
	}
	vals, err := readStable(stable)
	if err == nil {
		err = storeStable(dst, vals)
	}
	var last uint64
	if err == nil {
		last, err = src.LastIndex()
	}
	if first, ferr := src.FirstIndex(); err == nil && ferr == nil && first > 0 && last > 0 {
		// Batches well under a segment: a batch larger than a segment seals it.
		err = migrate.CopyLogs(context.Background(), dst, src, 1<<20, nil)
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return err
}

// openWALUnchecked opens the log store in dir as it is. The metadata
// store is ours so that a failed open can close it: raft-wal's Open leaves
// it open, and locked against the next open in this process.
func openWALUnchecked(dir string, logger hclog.Logger) (*walStore, error) {
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithSegmentSize(walSegmentSize), wal.WithLogger(logger), wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("open raft log store %s: %w", dir, err)
	}
	return &walStore{WAL: w}, nil
}

// walUnlocked fails when another process holds the log store in dir:
// raft-wal would wait for its lock forever.
func walUnlocked(dir string) error {
	meta := filepath.Join(dir, metadb.FileName)
	if _, err := os.Stat(meta); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, problem, err := openBoltReadOnly(meta)
	if err != nil {
		return err
	}
	if problem != nil {
		// Not a lock: raft-wal reports the damage itself.
		return nil
	}
	return db.Close()
}

// The stable store's integer keys. raft-boltdb stores them big endian and
// raft-wal little endian; the vote record and the values passed around
// here are big endian (what earlier builds recorded), and storeStable
// converts.
var stableUintKeys = []string{"CurrentTerm", "LastVoteTerm"}

// stableKeys are every key raft keeps in its stable store.
var stableKeys = append([]string{"LastVoteCand"}, stableUintKeys...)

// readStable returns the stable-store values of s (big endian integers);
// keys raft never set are absent.
func readStable(s raft.StableStore) (map[string][]byte, error) {
	vals := map[string][]byte{}
	for _, k := range stableKeys {
		if isUintKey(k) {
			v, err := s.GetUint64([]byte(k))
			if err != nil && !isNotFound(err) { // raft-boltdb: a key raft never set
				return nil, fmt.Errorf("read %s: %w", k, err)
			}
			if v != 0 {
				vals[k] = binary.BigEndian.AppendUint64(nil, v)
			}
			continue
		}
		v, err := s.Get([]byte(k))
		if err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("read %s: %w", k, err)
		}
		if len(v) > 0 {
			vals[k] = append([]byte(nil), v...)
		}
	}
	return vals, nil
}

// stableTerm is the current term in stable-store values as readStable
// returns them (0 when unset).
func stableTerm(vals map[string][]byte) uint64 {
	if v := vals["CurrentTerm"]; len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// raiseStable writes vals into s when their term is above the one s holds.
func raiseStable(s raft.StableStore, vals map[string][]byte) error {
	cur, err := readStable(s)
	if err != nil {
		return err
	}
	if stableTerm(vals) <= stableTerm(cur) {
		return nil
	}
	return storeStable(s, vals)
}

// storeStable writes vals (as readStable returns them) into s.
func storeStable(s raft.StableStore, vals map[string][]byte) error {
	for k, v := range vals {
		var err error
		if isUintKey(k) && len(v) == 8 {
			err = s.SetUint64([]byte(k), binary.BigEndian.Uint64(v))
		} else {
			err = s.Set([]byte(k), v)
		}
		if err != nil {
			return fmt.Errorf("write %s into the raft stable store: %w", k, err)
		}
	}
	return nil
}

func isUintKey(k string) bool { return slices.Contains(stableUintKeys, k) }

// isNotFound reports raft-boltdb's "no such key" (raft-wal answers a key
// it does not have with no value and no error).
func isNotFound(err error) bool { return errors.Is(err, raftboltdb.ErrKeyNotFound) }

// seedWAL creates the log store in dir holding only the stable values.
func seedWAL(dir string, stable map[string][]byte) error {
	w, err := openWAL(dir, hclog.NewNullLogger())
	if err != nil {
		return err
	}
	if err := storeStable(w, stable); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// finishMigration puts back a log store a rebuild had moved aside
// (resumeRebuild) and removes a raft.db left beside a complete log store (a
// migration that stopped after its rename), so that the check reads the
// log store that raft will open.
func finishMigration(raftDir string) error {
	if err := resumeRebuild(filepath.Join(raftDir, walSubdir)); err != nil {
		return err
	}
	legacy := filepath.Join(raftDir, legacyLogFile)
	if !exists(legacy) || !exists(filepath.Join(raftDir, walSubdir)) {
		return nil
	}
	if err := os.Remove(legacy); err != nil {
		return fmt.Errorf("remove the migrated %s: %w", legacy, err)
	}
	return syncDir(raftDir)
}

// migrateLegacyLog copies an intact raft.db (log entries and term and
// vote) into a new log store, built aside and renamed into place, then
// removes raft.db. A crash before the rename leaves raft.db alone (the
// copy is redone); after it, finishMigration removes raft.db.
func migrateLegacyLog(raftDir string, logger *slog.Logger) error {
	legacy := filepath.Join(raftDir, legacyLogFile)
	tmp := filepath.Join(raftDir, walSubdir+".migrating")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove an unfinished migration: %w", err)
	}
	src, err := raftboltdb.New(raftboltdb.Options{Path: legacy, BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: openTimeout}})
	if err != nil {
		return fmt.Errorf("open %s to migrate it: %w", legacy, err)
	}
	defer src.Close()
	first, _ := src.FirstIndex()
	last, _ := src.LastIndex()
	err = copyLogStore(tmp, src, src)
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("migrate %s to the log store: %w", legacy, err)
	}
	if err := os.Rename(tmp, filepath.Join(raftDir, walSubdir)); err != nil {
		return fmt.Errorf("put the migrated log store in place: %w", err)
	}
	if err := syncDir(raftDir); err != nil {
		return fmt.Errorf("sync %s: %w", raftDir, err)
	}
	logger.Info("migrated the raft log from raft.db (raft-boltdb) to the write-ahead log", "entries", entryCount(first, last), "path", filepath.Join(raftDir, walSubdir))
	return finishMigration(raftDir)
}

func entryCount(first, last uint64) uint64 {
	if last == 0 {
		return 0
	}
	return last - first + 1
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// syncDir fsyncs a directory, making renames and removals in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
