// Package authz holds the per-job authorization rules of
// --web.authorization-file: which job names each authenticated user may push
// to and delete from, and who may use the admin API. Reading stays open to
// every authenticated user; the rules only restrict writes.
//
// The file is YAML:
//
//	users:
//	  ci:
//	    push: ["ci-*"]   # job name globs (path.Match)
//	  ops:
//	    push: ["*"]
//	    admin: true      # the admin API
//
// Globs follow path.Match: '*' matches any run of characters except '/',
// '?' one character except '/', '[...]' a class; a job name containing '/'
// (possible with job@base64) needs a glob with the '/' spelled out.
package authz

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"sync"
	"sync/atomic"

	"go.yaml.in/yaml/v2"
)

// Rules are one parsed authorization file. They never change once parsed;
// a reload makes new Rules (see Holder).
type Rules struct {
	users map[string]User
}

// User is what one user of the file may do.
type User struct {
	// Push lists the job name globs (path.Match) the user may push to and
	// delete from.
	Push []string `yaml:"push"`
	// Admin allows the admin API (wipe, snapshot, restore, member
	// administration, and every other /api/v1/admin route).
	Admin bool `yaml:"admin"`
}

// file is the document's shape; unknown keys are errors.
type file struct {
	Users *map[string]User `yaml:"users"`
}

// Parse reads the rules from YAML. Unknown keys, duplicate users, an empty
// user name, an empty or malformed glob, and a document without a users
// key (an empty or truncated file) are errors; "users: {}" is a valid file
// in which nobody may write.
func Parse(b []byte) (*Rules, error) {
	var f file
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("parse authorization rules: %w", err)
	}
	if f.Users == nil {
		return nil, errors.New("parse authorization rules: no users key (write \"users: {}\" to allow no writes at all)")
	}
	r := &Rules{users: make(map[string]User, len(*f.Users))}
	for name, u := range *f.Users {
		if name == "" {
			return nil, errors.New("parse authorization rules: empty user name")
		}
		for _, g := range u.Push {
			if g == "" {
				return nil, fmt.Errorf("parse authorization rules: user %q: empty push glob", name)
			}
			// Match checks the whole pattern's syntax, whatever the name.
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("parse authorization rules: user %q: push glob %q: %w", name, g, err)
			}
		}
		r.users[name] = User{Push: append([]string(nil), u.Push...), Admin: u.Admin}
	}
	return r, nil
}

// ParseFile reads and parses the authorization file at path.
func ParseFile(path string) (*Rules, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read authorization file: %w", err)
	}
	r, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Known reports whether the file lists user.
func (r *Rules) Known(user string) bool {
	_, ok := r.users[user]
	return ok
}

// MayPush reports whether user may push to and delete from the job: the
// user is listed and one of their globs matches job. A user the file does
// not list may not.
func (r *Rules) MayPush(user, job string) bool {
	u, ok := r.users[user]
	if !ok {
		return false
	}
	for _, g := range u.Push {
		if ok, _ := path.Match(g, job); ok {
			return true
		}
	}
	return false
}

// IsAdmin reports whether user may use the admin API.
func (r *Rules) IsAdmin(user string) bool {
	return r.users[user].Admin
}

// Users returns the names of the listed users, sorted.
func (r *Rules) Users() []string {
	names := make([]string, 0, len(r.users))
	for n := range r.users {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Holder holds the current Rules and swaps them atomically on Reload, so
// requests read them without a lock while SIGHUP replaces them.
type Holder struct {
	path   string
	rules  atomic.Pointer[Rules]
	reload sync.Mutex // one reload at a time
}

// Open parses the file at path and returns a Holder of its rules; Reload
// reads the same path again.
func Open(path string) (*Holder, error) {
	r, err := ParseFile(path)
	if err != nil {
		return nil, err
	}
	h := &Holder{path: path}
	h.rules.Store(r)
	return h, nil
}

// NewHolder returns a Holder of fixed rules with no file behind them:
// Reload fails and keeps them.
func NewHolder(r *Rules) *Holder {
	h := &Holder{}
	h.rules.Store(r)
	return h
}

// Rules returns the current rules. Read them once per request, so one
// request is judged by one version of the file.
func (h *Holder) Rules() *Rules {
	return h.rules.Load()
}

// Path is the file the rules come from ("" for NewHolder).
func (h *Holder) Path() string { return h.path }

// Reload parses the file again and, only if it parses, makes its rules the
// current ones and returns them. On error the previous rules stay.
func (h *Holder) Reload() (*Rules, error) {
	h.reload.Lock()
	defer h.reload.Unlock()
	if h.path == "" {
		return nil, errors.New("reload authorization rules: no file")
	}
	r, err := ParseFile(h.path)
	if err != nil {
		return nil, fmt.Errorf("reload authorization rules (the previous rules stay): %w", err)
	}
	h.rules.Store(r)
	return r, nil
}
