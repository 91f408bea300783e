package fsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// ImportRecord says that the store was filled from an upstream Pushgateway
// persistence file. It is part of the state (snapshots included) and is kept
// through wipes, so that a node started again with --persistence.file does
// not import the same file into a cluster that was emptied on purpose. A
// restore replaces it with the record of the restored snapshot.
type ImportRecord struct {
	// TimeUnixNano is when the import was proposed (the proposing node's
	// clock, carried in the command).
	TimeUnixNano int64
	// Groups is the number of groups imported.
	Groups int
	// Source names the file and its digest.
	Source string
}

// ErrImportRefused is wrapped by the verdict on an import into a store that
// is not empty or imported before: nothing changes.
var ErrImportRefused = errors.New("import refused")

// ErrRestoreRefused is wrapped, with ErrInvalidCommand, by the verdict on
// a restore whose snapshot does not read back or holds an invalid group:
// nothing changes. (The accepting node and the leader validate the
// snapshot before proposing, so this does not happen in practice.)
var ErrRestoreRefused = errors.New("restore refused")

// LastPushUnixNano is the time expiry judges a group by: the time of its
// last successful push, which is what push_time_seconds shows, or, for a
// group that never had a successful push (push_time_seconds is 0, the group
// was created by a rejected push), the time of its last change.
func (g *Group) LastPushUnixNano() int64 {
	if f, ok := g.Families[PushTimeMetricName]; ok && gaugeValue(f.MF) != 0 {
		return f.TimeUnixNano
	}
	var last int64
	for _, f := range g.Families {
		if f.TimeUnixNano > last {
			last = f.TimeUnixNano
		}
	}
	return last
}

// ExpiryCandidates returns the grouping labels of the groups whose last push
// is older than cutoffUnixNano, in grouping-key order, at most max of them
// (max <= 0: all). The leader proposes them in an OpExpire command; Apply
// checks each again against the cutoff.
func (s *FSM) ExpiryCandidates(cutoffUnixNano int64, max int) []map[string]string {
	var out []map[string]string
	for _, g := range s.Groups() {
		if g.LastPushUnixNano() < cutoffUnixNano {
			out = append(out, g.Labels)
			if max > 0 && len(out) == max {
				break
			}
		}
	}
	return out
}

// applyExpire removes the listed groups that are still older than the
// cutoff: a group pushed again after the leader made its list stays.
func (s *FSM) applyExpire(cmd *Command) *Result {
	for _, labels := range cmd.Expire {
		key := GroupingKey(labels)
		if g := s.groups[key]; g != nil && g.LastPushUnixNano() < cmd.CutoffUnixNano {
			s.setGroup(key, nil)
		}
	}
	return &Result{}
}

// applyImport fills an empty store that never imported before with the
// command's groups, and records the import. Otherwise nothing changes and
// the verdict says why.
func (s *FSM) applyImport(cmd *Command) *Result {
	if r := s.imported; r != nil {
		return &Result{Err: fmt.Errorf("%w: the cluster already imported %d groups from %s at %s", ErrImportRefused,
			r.Groups, r.Source, time.Unix(0, r.TimeUnixNano).UTC().Format(time.RFC3339))}
	}
	if n := len(s.groups); n > 0 {
		return &Result{Err: fmt.Errorf("%w: the cluster is not empty (%d groups)", ErrImportRefused, n)}
	}
	for _, g := range cmd.Import {
		names := sortedNames(g.Labels)
		gp := newGroupingPairs(g.Labels, names)
		for _, f := range g.Families {
			sanitizeLabels(f.MF, gp)
		}
		g.Key = groupingKey(g.Labels, names)
		if s.groups[g.Key] == nil {
			s.setGroup(g.Key, g)
		}
	}
	s.imported = &ImportRecord{TimeUnixNano: cmd.TimeUnixNano, Groups: len(s.groups), Source: cmd.Source}
	return &Result{}
}

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

// Imported returns the import record, or nil if nothing was imported.
func (s *FSM) Imported() *ImportRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.imported == nil {
		return nil
	}
	r := *s.imported
	return &r
}

// SnapshotInfo describes a snapshot that checked out.
type SnapshotInfo struct {
	// Groups is the number of groups in it.
	Groups int
	// AppliedIndex is the log index it was taken at.
	AppliedIndex uint64
	// Imported is its import record, if any.
	Imported *ImportRecord
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
	return SnapshotInfo{Groups: len(st.groups), AppliedIndex: st.applied, Imported: st.imported}, nil
}
