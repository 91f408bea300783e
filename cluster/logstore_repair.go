package cluster

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// preallocateEmptySegments gives a segment file of 0 bytes its full size.
// raft-wal creates a segment file and then preallocates it; a crash or a
// full disk in between leaves it empty, and raft-wal writes into it
// without preallocating it again, which checkWAL would take for a
// truncated file at the next start.
func preallocateEmptySegments(dir string) error {
	segments, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		return fmt.Errorf("list log segments: %w", err)
	}
	for _, seg := range segments {
		if info, err := os.Stat(seg); err == nil && info.Size() == 0 {
			if err := os.Truncate(seg, walSegmentSize); err != nil {
				return fmt.Errorf("preallocate the empty log segment %s: %w", seg, err)
			}
		}
	}
	return nil
}

// repairSealedTail rebuilds the log store in dir when its tail segment is
// sealed on disk but not in wal-meta.db: raft-wal seals a full segment
// with the write that fills it and moves to a new segment in the
// background; a process killed in between leaves a log that reads well
// and refuses every append ("segment is sealed"; raft-wal v0.4.2 does not
// recover from it). The entries and the term and vote are copied into a
// new log store, which replaces the old one (resumeRebuild finishes an
// interrupted swap).
func repairSealedTail(dir string, logger hclog.Logger) error {
	sealed, err := tailSealed(dir)
	if err != nil || !sealed {
		return err
	}
	tmp, old := dir+".rebuilding", dir+".stuck"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove an unfinished rebuild: %w", err)
	}
	src, err := openWALUnchecked(dir, logger)
	if err != nil {
		return err
	}
	err = copyLogStore(tmp, src, src)
	if cerr := src.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("rebuild the raft log store whose last segment is sealed: %w", err)
	}
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("move the old raft log store aside: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("put the rebuilt raft log store in place: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	logger.Warn("rebuilt the raft log store: its last segment was full but no new one had been started (the process stopped in between)", "path", dir)
	return os.RemoveAll(old)
}

// resumeRebuild finishes a swap of repairSealedTail that a crash
// interrupted between its two renames: the old store goes back in place
// (and is rebuilt again).
func resumeRebuild(dir string) error {
	old := dir + ".stuck"
	if exists(dir) || !exists(old) {
		return nil
	}
	if err := os.Rename(old, dir); err != nil {
		return fmt.Errorf("put the raft log store back in place: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

// tailSealed reports whether the segment wal-meta.db names as the open
// tail is sealed on disk.
func tailSealed(dir string) (bool, error) {
	if !exists(filepath.Join(dir, metadb.FileName)) {
		return false, nil
	}
	meta := &metadb.BoltMetaDB{}
	st, err := meta.Load(dir)
	meta.Close()
	if err != nil {
		return false, nil // wal.Open reports it
	}
	var tail *types.SegmentInfo
	for i := range st.Segments {
		if st.Segments[i].SealTime.IsZero() {
			tail = &st.Segments[i]
		}
	}
	if tail == nil {
		return false, nil
	}
	w, err := segment.NewFiler(dir, walfs.New()).RecoverTail(*tail)
	if err != nil {
		return false, nil // wal.Open reports it
	}
	defer w.Close()
	sealed, _, err := w.Sealed()
	if err != nil {
		return false, fmt.Errorf("read the last log segment of %s: %w", dir, err)
	}
	return sealed, nil
}
