package main

import (
	"context"
	"io/fs"
	"path/filepath"
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
