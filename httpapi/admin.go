package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// MaxRestoreBytes bounds the snapshot PUT /api/v1/admin/restore accepts:
// the snapshot travels to the leader and through the raft log as one
// command, and the command port takes frames up to 256 MiB.
const MaxRestoreBytes = 240 << 20

// SnapshotContentType is the media type of GET /api/v1/admin/snapshot.
const SnapshotContentType = "application/vnd.pushgateway-cluster.snapshot"

// apiSnapshot streams a consistent snapshot of this node's state: every
// group as of one applied log index, in the versioned, checksummed format
// of raft snapshots.
func (a *API) apiSnapshot(w http.ResponseWriter, _ *http.Request) {
	snap := a.opts.Store.Snapshot()
	w.Header().Set("Content-Type", SnapshotContentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="pushgateway-cluster-%d.snap"`, snap.AppliedIndex()))
	w.Header().Set(IndexHeader, strconv.FormatUint(snap.AppliedIndex(), 10))
	w.Header().Set("X-Pushgateway-Groups", strconv.Itoa(snap.Len()))
	if _, err := snap.WriteTo(w); err != nil {
		// The status is sent already; the truncated stream fails its
		// checksum when restored.
		a.logger.Warn("streaming snapshot failed", "err", err)
	}
}

// restoreResult is the data of a successful restore.
type restoreResult struct {
	Groups int    `json:"groups"`
	Index  uint64 `json:"index"`
}

// apiRestore replaces the state of the whole cluster with the snapshot in
// the body, through the raft log. The snapshot is checked completely
// before it is proposed: a corrupt or truncated one is answered with 400
// and changes nothing.
func (a *API) apiRestore(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRestoreBytes+1))
	if err != nil {
		a.respondError(w, http.StatusBadRequest, fmt.Errorf("read snapshot: %w", err))
		return
	}
	if len(body) > MaxRestoreBytes {
		a.respondError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("snapshot larger than %d bytes", MaxRestoreBytes))
		return
	}
	info, err := fsm.ValidateSnapshot(body)
	if err != nil {
		a.respondError(w, http.StatusBadRequest, err)
		return
	}
	cmd := &fsm.Command{Op: fsm.OpRestore, TimeUnixNano: a.opts.Now().UnixNano(), Snapshot: body}
	res, err := a.opts.Submitter.Submit(r.Context(), cmd)
	if err != nil {
		a.respondError(w, clusterErrorCode(err, http.StatusInternalServerError), err)
		return
	}
	if res.Err != nil {
		a.respondError(w, http.StatusBadRequest, res.Err)
		return
	}
	setIndexHeader(w, res)
	a.logger.Warn("state replaced by a restored snapshot", "groups", info.Groups, "snapshot_index", info.AppliedIndex, "index", res.Index, "source", r.RemoteAddr)
	a.respond(w, restoreResult{Groups: info.Groups, Index: res.Index})
}

// transferResult is the data of a leadership transfer.
type transferResult struct {
	Leader string `json:"leader"`
}

// apiTransferLeadership asks the leader to hand leadership to another voter
// (?to=<name>, or the most up-to-date one).
func (a *API) apiTransferLeadership(w http.ResponseWriter, r *http.Request) {
	leader, err := a.opts.Cluster.TransferLeadership(r.Context(), r.URL.Query().Get("to"))
	if err != nil {
		a.respondError(w, clusterErrorCode(err, http.StatusBadRequest), err)
		return
	}
	a.respond(w, transferResult{Leader: leader})
}

// deleteResult is the data of a delete by selector: the grouping labels of
// every matched group, in grouping-key order.
type deleteResult struct {
	Groups []map[string]string `json:"groups"`
	DryRun bool                `json:"dry_run,omitempty"`
}

// apiDeleteMatching deletes every group one of the match[] selectors
// matches, in one log entry, so that every node removes the same set
// (?dry_run=true: deletes nothing). The answer lists the groups that
// matched on this node after the read barrier, just before the delete was
// proposed; the state machine removes what matches when the entry is
// applied, which includes a matching group pushed meanwhile.
func (a *API) apiDeleteMatching(w http.ResponseWriter, r *http.Request) {
	sels, cs, ok, err := requestSelectors(r)
	if err == nil && !ok {
		err = fmt.Errorf("no %s selector given", matchParam)
	}
	if err != nil {
		a.respondError(w, http.StatusBadRequest, err)
		return
	}
	dryRun := false
	if v := r.URL.Query().Get("dry_run"); v != "" {
		if dryRun, err = strconv.ParseBool(v); err != nil {
			a.respondError(w, http.StatusBadRequest, fmt.Errorf("dry_run: %w", err))
			return
		}
	}
	if err := a.awaitCurrent(r); err != nil {
		a.respondError(w, http.StatusServiceUnavailable, err)
		return
	}
	matched := matchingGroups(a.opts.Store.Groups(), cs)
	res := deleteResult{Groups: make([]map[string]string, 0, len(matched)), DryRun: dryRun}
	for _, g := range matched {
		res.Groups = append(res.Groups, g.Labels.Map())
	}
	if dryRun {
		a.setReadIndex(w)
		a.respond(w, res)
		return
	}
	cmd := &fsm.Command{Op: fsm.OpDeleteMatching, TimeUnixNano: a.opts.Now().UnixNano(), Selectors: sels}
	applied, err := a.opts.Submitter.Submit(r.Context(), cmd)
	if err != nil {
		a.respondError(w, clusterErrorCode(err, http.StatusInternalServerError), err)
		return
	}
	setIndexHeader(w, applied)
	if applied.Err != nil {
		a.respondError(w, http.StatusBadRequest, applied.Err)
		return
	}
	a.logger.Info("deleted groups by selector", "selectors", r.URL.Query()[matchParam], "groups", len(matched),
		"user", a.requestUser(r), "source", r.RemoteAddr, "index", applied.Index)
	a.respond(w, res)
}
