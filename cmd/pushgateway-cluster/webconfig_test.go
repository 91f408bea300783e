package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWebUsersFollowTheWebConfigFile: once basic_auth_users is removed from
// --web.config.file while the node runs (exporter-toolkit then checks no
// password), a basic-auth name no longer counts as a user; back in, it does.
func TestWebUsersFollowTheWebConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.yml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	withUsers := "basic_auth_users:\n  ci: $2y$10$abcdefghijklmnopqrstuu5Ue0mWg9o2Gk9j0dA1b1Sx7tqKQ8Q9e\n"
	write(withUsers)
	w := newWebUsersWatch(path, readWebConfig(path))
	if !w.BasicAuthUsers() {
		t.Fatal("users in the file, not seen")
	}
	write("# users removed\n")
	if w.BasicAuthUsers() {
		t.Fatal("users removed from the file, still trusted")
	}
	write(withUsers)
	if !w.BasicAuthUsers() {
		t.Fatal("users back in the file, not seen")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if w.BasicAuthUsers() {
		t.Fatal("file gone, users still trusted")
	}
	if (&webUsersWatch{}).BasicAuthUsers() {
		t.Fatal("no --web.config.file, users trusted")
	}
}
