package main

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// restartAll kills every node of in with SIGKILL and starts them again on
// the same storage and ports, all at once, and returns the time from the
// start until every node answers /-/ready with 200: a node's (or the whole
// cluster's) restart to ready after a crash.
func restartAll(ctx context.Context, in *instance, timeout time.Duration) (time.Duration, error) {
	for _, c := range in.nodes {
		if err := c.Kill(); err != nil {
			return 0, err
		}
	}
	if len(in.nodes) > 0 {
		if info, err := os.Stat(in.nodes[0].logPath); err == nil {
			in.restartLogFrom = info.Size()
		}
	}
	start := time.Now()
	for i, c := range in.nodes {
		again, err := startChild(c.name, c.dir, c.bin, c.port, c.args)
		if err != nil {
			return 0, err
		}
		in.nodes[i] = again
	}
	if err := waitReady(ctx, in, timeout); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// snapshot downloads a snapshot of the whole state from node (GET
// /api/v1/admin/snapshot: the encoding raft persists, taken the same way)
// and returns how long it took and its size.
func (l *loader) snapshot(ctx context.Context, node string) (time.Duration, int, error) {
	return l.scrapePath(ctx, node, "/api/v1/admin/snapshot", "*/*", "identity")
}

// storageBytes is the size of the files under a node's --storage.path
// (log, snapshots, vote record), summed per node; it returns the largest.
func storageBytes(in *instance) float64 {
	var largest float64
	for _, c := range in.nodes {
		var sum float64
		_ = filepath.WalkDir(filepath.Join(in.dir, c.name), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil {
					sum += float64(info.Size())
				}
			}
			return nil
		})
		largest = max(largest, sum)
	}
	return largest
}

// The first node's log lines of a restart that say what it spent the time
// on: the restore of its snapshot (how long, up to which log index) and
// the index it had applied once ready.
var (
	restoredLine = regexp.MustCompile(`msg="restored the state from a snapshot".* applied_index=(\d+) took=(\S+)`)
	readyLine    = regexp.MustCompile(`msg="node is ready".* applied_index=(\d+)`)
)

// restartParts reads the first node's log since the restart and returns how
// long the restore of its snapshot took and how many log entries it applied
// after it before it was ready; ok is false if the log does not say.
func restartParts(in *instance) (restore time.Duration, replayed uint64, ok bool) {
	if len(in.nodes) == 0 {
		return 0, 0, false
	}
	f, err := os.Open(in.nodes[0].logPath)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	if _, err := f.Seek(in.restartLogFrom, io.SeekStart); err != nil {
		return 0, 0, false
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return 0, 0, false
	}
	r, ready := restoredLine.FindSubmatch(b), readyLine.FindSubmatch(b)
	if r == nil || ready == nil {
		return 0, 0, false
	}
	restoredAt, err1 := strconv.ParseUint(string(r[1]), 10, 64)
	took, err2 := time.ParseDuration(string(r[2]))
	readyAt, err3 := strconv.ParseUint(string(ready[1]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || readyAt < restoredAt {
		return 0, 0, false
	}
	return took, readyAt - restoredAt, true
}
