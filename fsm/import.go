package fsm

import (
	"errors"
	"fmt"
	"time"
)

// Import (OpImport): the groups of an upstream persistence file, taken once
// into an empty store, and the record that says so.

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
		gp := newGroupingPairs(g.Labels)
		for i, f := range g.Families {
			// The command's families are its own: their metrics are
			// sanitized in place and stored anew.
			mf := f.MF()
			sanitizeLabels(mf, gp)
			g.Families[i] = NewFamily(mf, f.TimeUnixNano)
		}
		g.Key = g.Labels.key()
		if s.groups[g.Key] == nil {
			s.setGroup(g.Key, g)
		}
	}
	s.imported = &ImportRecord{TimeUnixNano: cmd.TimeUnixNano, Groups: len(s.groups), Source: cmd.Source}
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
