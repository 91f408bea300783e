package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Files under <storage.path>/raft besides the log store (logstore.go) and
// snapshots/.
const (
	raftSubdir = "raft"
	// recoveringMarker exists while a node whose storage was corrupt
	// catches up from its peers; it holds the reason.
	recoveringMarker = "recovering"
	// quarantineDir (under the storage path) receives corrupt raft
	// directories, one per detection, for post-mortems.
	quarantineDir = "quarantine"
)

// corruption says what in the local raft storage failed verification.
type corruption struct{ reason string }

func (c *corruption) Error() string { return c.reason }

func corrupt(format string, args ...any) *corruption {
	return &corruption{reason: fmt.Sprintf(format, args...)}
}

// Commands carry a checksum of their data in raft.Log.Extensions, written
// by the leader and verified when the log is checked at start and when an
// entry is applied: bolt checksums only its meta pages, so a flipped bit
// inside a log entry would otherwise be applied as a different write.
const checksumTag = 'c'

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// commandChecksum returns the Extensions value for a command's data.
func commandChecksum(data []byte) []byte {
	sum := crc32.Checksum(data, castagnoli)
	return []byte{checksumTag, byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)}
}

// verifyChecksum checks a command entry's data against its checksum.
// Entries without one (written by builds before checksums) pass.
func verifyChecksum(l *raft.Log) error {
	if l.Type != raft.LogCommand || len(l.Extensions) == 0 {
		return nil
	}
	if len(l.Extensions) != 5 || l.Extensions[0] != checksumTag {
		return fmt.Errorf("raft log entry %d has an unknown extension of %d bytes", l.Index, len(l.Extensions))
	}
	if want := commandChecksum(l.Data); string(want) != string(l.Extensions) {
		return fmt.Errorf("raft log entry %d: checksum mismatch (data corrupt)", l.Index)
	}
	return nil
}

// storageReport is what checkRaftStorage found.
type storageReport struct {
	// problem is nil when the log and snapshots are intact.
	problem *corruption
	// stable holds the raft stable-store keys (term and vote) read from
	// the log store, when they could be read.
	stable map[string][]byte
	// legacy is set when the log store is an earlier build's raft.db.
	legacy bool
	// verified holds the snapshots whose CRC the check verified, by ID,
	// with their state files' stamps (snapshotstore.go).
	verified map[string]fileStamp
	// tail holds the newest entries of the write-ahead log after the
	// newest snapshot, as the check read them (logtail.go).
	tail *logTail
}

// checkRaftStorage verifies the raft directory before raft opens it: the
// log store (the write-ahead log, or the raft.db of an earlier build that
// is about to be migrated), a contiguous and decodable log whose command
// checksums match, every snapshot's metadata and CRC, and that the log
// continues the newest snapshot. The snapshots are read while the log is.
// Errors are conditions that are not corruption (the store is locked by
// another process, permissions).
func checkRaftStorage(dir string) (*storageReport, error) {
	rep := &storageReport{}
	var first, last uint64
	var problem *corruption
	var err error
	var (
		newest        uint64
		verified      map[string]fileStamp
		snapProblem   *corruption
		snapshotsRead sync.WaitGroup
	)
	snapshotsRead.Go(func() { newest, verified, snapProblem = checkSnapshots(dir) })
	if legacy := filepath.Join(dir, legacyLogFile); exists(legacy) && !exists(filepath.Join(dir, walSubdir)) {
		rep.legacy = true
		first, last, problem, err = checkLogStore(legacy, rep)
	} else {
		first, last, problem, err = checkWAL(filepath.Join(dir, walSubdir), rep)
	}
	snapshotsRead.Wait()
	if err != nil || problem != nil {
		rep.problem = problem
		return rep, err
	}
	if snapProblem != nil {
		rep.problem = snapProblem
		return rep, nil
	}
	rep.verified = verified
	if rep.tail != nil {
		rep.tail.after(newest)
	}
	if last > 0 && first > newest+1 {
		if newest == 0 {
			rep.problem = corrupt("the raft log starts at index %d but there is no snapshot: entries 1 to %d are missing", first, first-1)
		} else {
			rep.problem = corrupt("the raft log starts at index %d but the newest snapshot ends at %d: entries are missing", first, newest)
		}
	}
	return rep, nil
}

// checkLogStore reads every page of raft.db that holds data, with faults
// (a file truncated under its mmap) turned into errors, and then every log
// entry through raft-boltdb. It fills rep.stable.
func checkLogStore(path string, rep *storageReport) (first, last uint64, problem *corruption, err error) {
	if _, statErr := os.Stat(path); errors.Is(statErr, fs.ErrNotExist) {
		return 0, 0, nil, nil
	}
	guarded(func() { first, last, problem, err = walkBolt(path, rep) }, func(p any) {
		problem = corrupt("reading %s failed: %v", path, p)
	})
	if err != nil || problem != nil {
		return
	}
	guarded(func() { problem, err = readEntries(path, first, last) }, func(p any) {
		problem = corrupt("decoding the log in %s failed: %v", path, p)
	})
	return
}

// guarded runs f on its own goroutine with memory faults turned into
// panics, and passes a panic to onPanic: a damaged bolt file can make bolt
// read past the end of its mapping or panic on a bad page.
func guarded(f func(), onPanic func(any)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		debug.SetPanicOnFault(true)
		defer func() {
			if p := recover(); p != nil {
				onPanic(p)
			}
		}()
		f()
	}()
	<-done
}

// openTimeout bounds the wait for another process's lock on a bolt file.
const openTimeout = 2 * time.Second

func openBoltReadOnly(path string) (*bbolt.DB, *corruption, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: openTimeout})
	switch {
	case err == nil:
		return db, nil, nil
	case errors.Is(err, bbolt.ErrTimeout):
		return nil, nil, fmt.Errorf("raft log store %s is locked: is another pushgateway-cluster using this --storage.path?", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, nil, fmt.Errorf("open raft log store: %w", err)
	default:
		return nil, corrupt("%s cannot be opened: %v", path, err), nil
	}
}

// walkBolt checks the bolt file's size against its metadata, reads the
// stable keys, checks that the log keys are contiguous, runs bolt's own
// consistency check (every page) and returns the first and last log index.
// The values are read by readEntries.
func walkBolt(path string, rep *storageReport) (first, last uint64, problem *corruption, err error) {
	db, problem, err := openBoltReadOnly(path)
	if db == nil {
		return 0, 0, problem, err
	}
	defer db.Close()
	walkErr := db.View(func(tx *bbolt.Tx) error {
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if info.Size() < tx.Size() {
			problem = corrupt("%s is %d bytes long but its metadata says %d: the file was truncated", path, info.Size(), tx.Size())
			return nil
		}
		conf, logs := tx.Bucket([]byte("conf")), tx.Bucket([]byte("logs"))
		if conf == nil || logs == nil {
			problem = corrupt("%s lacks its conf or logs bucket", path)
			return nil
		}
		stable := map[string][]byte{}
		_ = conf.ForEach(func(k, v []byte) error {
			stable[string(k)] = append([]byte(nil), v...)
			return nil
		})
		rep.stable = stable
		var prev uint64
		c := logs.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) != 8 {
				problem = corrupt("%s holds a log key of %d bytes", path, len(k))
				return nil
			}
			idx := binary.BigEndian.Uint64(k)
			if prev != 0 && idx != prev+1 {
				problem = corrupt("the raft log in %s jumps from index %d to %d", path, prev, idx)
				return nil
			}
			if first == 0 {
				first = idx
			}
			prev, last = idx, idx
		}
		problem = firstBoltProblem(tx, path)
		return nil
	})
	if walkErr != nil {
		return 0, 0, nil, fmt.Errorf("check raft log store: %w", walkErr)
	}
	return first, last, problem, nil
}

// readEntries decodes every log entry and verifies command checksums.
func readEntries(path string, first, last uint64) (*corruption, error) {
	if last == 0 {
		return nil, nil
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: openTimeout}})
	if err != nil {
		return corrupt("%s cannot be opened: %v", path, err), nil
	}
	defer store.Close()
	return verifyEntries(store, path, first, last, nil), nil
}

// verifyEntries reads entries first to last of store, checking each one's
// index and command checksum; where names the store in the report.
func verifyEntries(store raft.LogStore, where string, first, last uint64, tail *logTail) *corruption {
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			return corrupt("raft log entry %d in %s cannot be read: %v", i, where, err)
		}
		if l.Index != i {
			return corrupt("raft log entry stored under index %d in %s says it is %d", i, where, l.Index)
		}
		if err := verifyChecksum(&l); err != nil {
			return corrupt("%v in %s", err, where)
		}
		if tail != nil {
			tail.add(&l)
		}
	}
	return nil
}

// checkSnapshots opens every snapshot (raft verifies its CRC while
// opening), each on its own goroutine, and returns the newest one's index
// and the stamps of the state files it verified (snapshotstore.go). A
// snapshot directory whose metadata raft cannot read is corruption too:
// raft would skip it and replay the log from an older point.
func checkSnapshots(dir string) (uint64, map[string]fileStamp, *corruption) {
	entries, err := os.ReadDir(filepath.Join(dir, snapshotDirName))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, corrupt("read snapshot directory: %v", err)
	}
	dirs := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			dirs[e.Name()] = true
		}
	}
	if len(dirs) == 0 {
		return 0, nil, nil
	}
	store, err := raft.NewFileSnapshotStoreWithLogger(dir, len(dirs), hclog.NewNullLogger())
	if err != nil {
		return 0, nil, corrupt("open snapshot store: %v", err)
	}
	metas, err := store.List()
	if err != nil {
		return 0, nil, corrupt("list snapshots: %v", err)
	}
	for _, m := range metas {
		delete(dirs, m.ID)
	}
	for id := range dirs {
		return 0, nil, corrupt("snapshot %s has unreadable metadata", id)
	}
	stamps := make([]fileStamp, len(metas))
	problems := make([]*corruption, len(metas))
	var wg sync.WaitGroup
	for i, m := range metas {
		wg.Go(func() {
			stamp, err := stampOf(snapshotStatePath(dir, m.ID))
			if err == nil {
				var rc io.ReadCloser
				if _, rc, err = store.Open(m.ID); err == nil {
					_ = rc.Close()
				}
			}
			if err != nil {
				problems[i] = corrupt("snapshot %s (index %d) failed verification: %v", m.ID, m.Index, err)
			}
			stamps[i] = stamp
		})
	}
	wg.Wait()
	verified := make(map[string]fileStamp, len(metas))
	for i, m := range metas {
		if problems[i] != nil {
			return 0, nil, problems[i]
		}
		verified[m.ID] = stamps[i]
	}
	return metas[0].Index, verified, nil
}

// preparedStorage is what prepareRaftStorage found and left for startRaft.
type preparedStorage struct {
	// recovering is set while the node recovers its storage from its
	// peers (now or still, after a restart during recovery).
	recovering bool
	// stable holds the stable-store values the log store now holds (for
	// the vote record's mirror).
	stable map[string][]byte
	// verified holds the snapshots the check read through their CRC
	// (snapshotstore.go).
	verified map[string]fileStamp
	// tail holds the entries after the newest snapshot the check read, for
	// raft's reads at start (logtail.go).
	tail *logTail
}

// prepareRaftStorage runs before raft opens its stores. Intact storage is
// left alone, but for an earlier build's raft.db, which is migrated to the
// write-ahead log (logstore.go). Corrupt storage is moved to <storage.path>/quarantine/<time>,
// replaced by an empty log that keeps this node's term and vote (from
// the log store or its mirror), and marked as recovering: the node then copies
// the state from the leader and neither votes nor stands for election
// until it has caught up, because its vote must not help elect a leader
// that lacks entries it had acknowledged. It returns what startRaft needs to know of it.
func prepareRaftStorage(dataDir string, logger *slog.Logger) (preparedStorage, error) {
	dir := filepath.Join(dataDir, raftSubdir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return preparedStorage{}, nil
	}
	_, markerErr := os.Stat(filepath.Join(dir, recoveringMarker))
	recovering := markerErr == nil
	if err := finishMigration(dir); err != nil {
		return preparedStorage{}, err
	}
	rep, err := checkRaftStorage(dir)
	if err != nil {
		return preparedStorage{}, err
	}
	mirror := filepath.Join(dir, voteRecordFile)
	if rep.problem == nil {
		// The log store is intact: it is the source of the vote record,
		// unless the record has the higher term (the store was replaced or
		// went back in time): a term must never go down, or this node could
		// vote twice in one; startRaft raises the store to the record.
		stable := rep.stable
		if rec, err := readVoteRecord(mirror); err == nil && stableTerm(rec) > stableTerm(stable) {
			logger.Warn("the raft log store's term is behind this node's vote record; keeping the record's term and vote",
				"store_term", stableTerm(stable), "record_term", stableTerm(rec))
			stable = rec
		} else if len(stable) > 0 {
			if err := writeVoteRecord(mirror, stable); err != nil {
				return preparedStorage{}, fmt.Errorf("write vote record: %w", err)
			}
		}
		if rep.legacy {
			if err := migrateLegacyLog(dir, logger); err != nil {
				return preparedStorage{}, err
			}
		}
		return preparedStorage{recovering: recovering, stable: stable, verified: rep.verified, tail: rep.tail}, nil
	}
	// The vote record is checksummed; the log store is what failed.
	stable, recErr := readVoteRecord(mirror)
	if recErr != nil {
		if stable = rep.stable; stable == nil {
			return preparedStorage{}, fmt.Errorf("the raft storage in %s is corrupt (%s) and this node's record of its term and vote is lost too (%v): "+
				"remove this member from the cluster on a healthy node (pushgateway-cluster admin remove-member), move %s away, and start it again to join as a new member",
				dir, rep.problem, recErr, dataDir)
		}
	}
	quarantine := filepath.Join(dataDir, quarantineDir, time.Now().UTC().Format("20060102T150405.000Z"))
	if err := os.MkdirAll(quarantine, 0o750); err != nil {
		return preparedStorage{}, fmt.Errorf("create quarantine directory: %w", err)
	}
	if err := os.Rename(dir, filepath.Join(quarantine, raftSubdir)); err != nil {
		return preparedStorage{}, fmt.Errorf("move corrupt raft storage aside: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return preparedStorage{}, fmt.Errorf("create raft dir: %w", err)
	}
	if err := seedWAL(filepath.Join(dir, walSubdir), stable); err != nil {
		return preparedStorage{}, err
	}
	if err := writeVoteRecord(mirror, stable); err != nil {
		return preparedStorage{}, err
	}
	if err := writeFileSync(filepath.Join(dir, recoveringMarker), []byte(rep.problem.reason+"\n")); err != nil {
		return preparedStorage{}, fmt.Errorf("write recovery marker: %w", err)
	}
	logger.Error("local raft storage is corrupt: moved it aside; this node recovers the state from its peers and neither votes nor stands for election until it has caught up",
		"problem", rep.problem.reason, "moved_to", quarantine)
	return preparedStorage{recovering: true, stable: stable}, nil
}

// writeFileSync writes data to path through a temporary file, fsynced and
// renamed into place, and syncs the directory.
func writeFileSync(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return werr
	}
	if err := syncDir(filepath.Dir(path)); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
