package main

import (
	"os"
	"sync"
	"time"
)

// webUsersWatch answers, for each request, whether --web.config.file has
// basic_auth_users now. exporter-toolkit reads the file again on every
// request, so an operator may remove the users while the node runs; from
// then on nobody's password is checked, and a request's basic-auth name
// must no longer count as its user (who pushed, authorization). The file is
// read again only when its size or modification time changes.
type webUsersWatch struct {
	path string

	mu      sync.Mutex
	size    int64
	modTime time.Time
	users   bool
}

func newWebUsersWatch(path string, current webConfigSummary) *webUsersWatch {
	w := &webUsersWatch{path: path, users: current.BasicAuthUsers}
	if fi, err := os.Stat(path); err == nil {
		w.size, w.modTime = fi.Size(), fi.ModTime()
	}
	return w
}

// BasicAuthUsers reports whether basic_auth_users is set in the file as it
// is now. A file that cannot be read counts as without users: exporter-
// toolkit refuses every request then anyway.
func (w *webUsersWatch) BasicAuthUsers() bool {
	if w.path == "" {
		return false
	}
	fi, err := os.Stat(w.path)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.users, w.size, w.modTime = false, -1, time.Time{}
		return false
	}
	if fi.Size() != w.size || !fi.ModTime().Equal(w.modTime) {
		w.size, w.modTime = fi.Size(), fi.ModTime()
		w.users = readWebConfig(w.path).BasicAuthUsers
	}
	return w.users
}
