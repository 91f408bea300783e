package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/cluster"
	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/upstreamfile"
)

// maxImportBytes bounds the import command: it travels to the leader and
// through the raft log as one entry, and the command port takes frames up
// to 256 MiB.
const maxImportBytes = 240 << 20

// loadUpstreamFile reads --persistence.file at startup, so that a file that
// cannot be imported stops the start instead of being skipped silently. A
// missing file means nothing to import (as upstream starts empty).
func loadUpstreamFile(path string, logger *slog.Logger) (*upstreamfile.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := upstreamfile.Load(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		logger.Info("--persistence.file does not exist: nothing to import", "file", path)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("--persistence.file: %w", err)
	}
	cmd, _ := importCommand(f)
	size, err := cmd.Encode()
	if err != nil {
		return nil, fmt.Errorf("--persistence.file %s: %w", path, err)
	}
	if len(size) > maxImportBytes {
		return nil, fmt.Errorf("--persistence.file %s: %d groups make a %d byte import, more than the %d bytes one raft entry may carry", path, len(f.Groups), len(size), maxImportBytes)
	}
	logger.Info("read upstream persistence file; it is imported once the cluster is ready, if the cluster is empty", "file", path, "groups", len(f.Groups), "sha256", f.Digest)
	return f, nil
}

// importCommand is the command that imports the file's groups. Groups that
// fsm.ValidateImport refuses (upstream stores some it cannot
// expose itself) are left out and returned with the reason, so that one
// broken group does not block the migration of the others.
func importCommand(f *upstreamfile.File) (*fsm.Command, map[string]error) {
	groups := make([]*fsm.Group, 0, len(f.Groups))
	var skipped map[string]error
	for _, g := range f.Groups {
		if err := fsm.ValidateImport(g); err != nil {
			if skipped == nil {
				skipped = map[string]error{}
			}
			skipped[fmt.Sprint(g.Labels)] = err
			continue
		}
		groups = append(groups, g)
	}
	return &fsm.Command{Op: fsm.OpImport, TimeUnixNano: time.Now().UnixNano(), Import: groups, Source: f.Source()}, skipped
}

// gatedReadiness is the node's readiness, held back while this node still
// has to import an upstream persistence file: a scrape must not see an
// empty gateway that is about to be filled.
type gatedReadiness struct {
	node      *cluster.Node
	importing atomic.Bool
}

// Ready implements httpapi.Readiness.
func (g *gatedReadiness) Ready() error {
	if err := g.node.Ready(); err != nil {
		return err
	}
	if g.importing.Load() {
		return errors.New("importing the upstream persistence file")
	}
	return nil
}

// importUpstream proposes the import once the node is ready, if the cluster
// is empty and never imported: through the raft log, as one command, so
// every node gets the same groups. The state machine decides again when it
// applies the command: of several nodes started with the flag, one imports
// and the others are refused.
func importUpstream(ctx context.Context, node *cluster.Node, state *fsm.FSM, f *upstreamfile.File, logger *slog.Logger, gate *gatedReadiness) {
	defer gate.importing.Store(false)
	log := logger.With("file", f.Path, "sha256", f.Digest)
	for {
		for node.Ready() != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		if r := state.Imported(); r != nil {
			log.Info("not importing --persistence.file: the cluster imported before (the import is kept through wipes)",
				"imported_from", r.Source, "imported_groups", r.Groups, "imported_at", time.Unix(0, r.TimeUnixNano).UTC().Format(time.RFC3339))
			return
		}
		if n := state.Len(); n > 0 {
			log.Warn("not importing --persistence.file: the cluster is not empty", "groups", n)
			return
		}
		cmd, skipped := importCommand(f)
		for group, reason := range skipped {
			log.Warn("not importing a group of --persistence.file that cannot be exposed", "group", group, "reason", reason)
		}
		if len(cmd.Import) == 0 {
			log.Error("not importing --persistence.file: none of its groups can be exposed", "skipped", len(skipped))
			return
		}
		res, err := node.Submit(ctx, cmd)
		if errors.Is(err, fsm.ErrInvalidCommand) {
			log.Error("import of --persistence.file refused", "reason", err)
			return
		}
		if err != nil {
			log.Warn("import of --persistence.file not applied yet; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if res.Err != nil {
			log.Warn("import of --persistence.file refused", "reason", res.Err)
			return
		}
		log.Info("imported the upstream persistence file", "groups", len(cmd.Import), "skipped", len(skipped), "index", res.Index)
		return
	}
}
