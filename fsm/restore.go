package fsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Restore (OpRestore): a whole snapshot replaces the state, and the checks
// that a snapshot reads back.

// ErrRestoreRefused is wrapped, with ErrInvalidCommand, by the verdict on
// a restore whose snapshot does not read back or holds an invalid group:
// nothing changes. (The accepting node and the leader validate the
// snapshot before proposing, so this does not happen in practice.)
var ErrRestoreRefused = errors.New("restore refused")

// applyRestore replaces the state with the command's snapshot. The applied
// index stays the log index of the command.
func (s *FSM) applyRestore(cmd *Command) *Result {
	st, err := readSnapshot(bytes.NewReader(cmd.Snapshot))
	if err != nil {
		// The same verdict as Validate's on the accepting node.
		return &Result{Err: fmt.Errorf("%w: %w: %v", ErrInvalidCommand, ErrRestoreRefused, err)}
	}
	s.install(st)
	return &Result{}
}

// SnapshotInfo describes a snapshot that checked out.
type SnapshotInfo struct {
	// Groups is the number of groups in it.
	Groups int
	// AppliedIndex is the log index it was taken at.
	AppliedIndex uint64
	// Imported is its import record, if any.
	Imported *ImportRecord
	// GroupMeta is set when a group in it has its own expiry or a pusher
	// recorded: builds without FeatureGroupMeta cannot read it.
	GroupMeta bool
}

// ValidateSnapshot reads a whole snapshot as Restore would, without
// touching any state: errors wrap ErrCorruptSnapshot.
func ValidateSnapshot(b []byte) (SnapshotInfo, error) {
	return CheckSnapshot(bytes.NewReader(b))
}

// CheckSnapshot is ValidateSnapshot for a stream, which must end with the
// snapshot. Errors wrap ErrCorruptSnapshot.
func CheckSnapshot(r io.Reader) (SnapshotInfo, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	st, err := readSnapshot(br)
	if err != nil {
		return SnapshotInfo{}, err
	}
	if n, _ := io.Copy(io.Discard, br); n > 0 {
		return SnapshotInfo{}, fmt.Errorf("%w: %d bytes after the checksum", ErrCorruptSnapshot, n)
	}
	info := SnapshotInfo{Groups: len(st.groups), AppliedIndex: st.applied, Imported: st.imported}
	for _, g := range st.groups {
		info.GroupMeta = info.GroupMeta || g.hasMeta()
	}
	return info, nil
}
