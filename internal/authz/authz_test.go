package authz

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

const example = `
users:
  ci:
    push: ["ci-*", "deploy-?", "[ab]-job"]
  ops:
    push: ["*"]
    admin: true
  auditor: {}
`

func mustParse(t *testing.T, s string) *Rules {
	t.Helper()
	r, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGlobsUsersAndAdmin(t *testing.T) {
	r := mustParse(t, example)
	for _, c := range []struct {
		user, job string
		want      bool
	}{
		{"ci", "ci-build", true},
		{"ci", "ci-", true},
		{"ci", "nightly", false},
		{"ci", "xci-build", false}, // globs match the whole name
		{"ci", "deploy-1", true},
		{"ci", "deploy-12", false},
		{"ci", "a-job", true},
		{"ci", "c-job", false},
		{"ci", "ci-a/b", false}, // '*' does not match '/' (path.Match)
		{"ops", "nightly", true},
		{"ops", "anything-at-all", true},
		{"auditor", "ci-build", false}, // listed, no globs: reads only
		{"stranger", "ci-build", false},
		{"", "ci-build", false},
	} {
		if got := r.MayPush(c.user, c.job); got != c.want {
			t.Errorf("MayPush(%q, %q) = %v, want %v", c.user, c.job, got, c.want)
		}
	}
	for user, want := range map[string]bool{"ops": true, "ci": false, "auditor": false, "stranger": false, "": false} {
		if got := r.IsAdmin(user); got != want {
			t.Errorf("IsAdmin(%q) = %v, want %v", user, got, want)
		}
	}
	for user, want := range map[string]bool{"ops": true, "ci": true, "auditor": true, "stranger": false} {
		if got := r.Known(user); got != want {
			t.Errorf("Known(%q) = %v, want %v", user, got, want)
		}
	}
	if got, want := r.Users(), []string{"auditor", "ci", "ops"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Users() = %v, want %v", got, want)
	}
}

func TestNoUsersAllowsNoWrites(t *testing.T) {
	r := mustParse(t, "users: {}\n")
	if r.MayPush("ops", "x") || r.IsAdmin("ops") || len(r.Users()) != 0 {
		t.Fatal("an empty users map allowed something")
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"empty file", "", "no users key"},
		{"comment only", "# nothing\n", "no users key"},
		{"null users", "users:\n", "no users key"},
		{"unknown top-level key", "users: {}\ngroups: {}\n", "field groups not found"},
		{"unknown user key", "users:\n  ci:\n    pushh: [\"*\"]\n", "field pushh not found"},
		{"duplicate user", "users:\n  ci: {}\n  ci: {}\n", "already set"},
		{"malformed glob", "users:\n  ci:\n    push: [\"ci-[\"]\n", `user "ci": push glob "ci-["`},
		{"malformed glob after a mismatch", "users:\n  ci:\n    push: [\"x[\\\\\"]\n", "syntax error in pattern"},
		{"empty glob", "users:\n  ci:\n    push: [\"\"]\n", "empty push glob"},
		{"empty user name", "users:\n  \"\": {}\n", "empty user name"},
		{"push not a list", "users:\n  ci:\n    push: \"*\"\n", "cannot unmarshal"},
		{"admin not a bool", "users:\n  ci:\n    admin: maybe\n", "cannot unmarshal"},
		{"not YAML", "users: [\n", "parse authorization rules"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse([]byte(c.doc))
			if err == nil {
				t.Fatalf("parsed into %+v, want an error containing %q", r, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestOpenAndReloadKeepOldRulesOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authz.yml")
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "read authorization file") {
		t.Fatalf("missing file: %v", err)
	}
	writeFile(t, path, "users:\n  ci:\n    push: [\"ci-*\"]\n")
	h, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.Path() != path || !h.Rules().MayPush("ci", "ci-1") || h.Rules().MayPush("ci", "nightly") {
		t.Fatal("rules of the first file")
	}

	writeFile(t, path, "users:\n  ci:\n    push: [\"*\"]\n")
	r, err := h.Reload()
	if err != nil || len(r.Users()) != 1 {
		t.Fatalf("reload: %v %v", r, err)
	}
	if !h.Rules().MayPush("ci", "nightly") {
		t.Fatal("reload did not take the new rules")
	}

	for _, bad := range []string{"users:\n  ci:\n    push: [\"[\"]\n", "", "users: {}\nextra: 1\n"} {
		writeFile(t, path, bad)
		if _, err := h.Reload(); err == nil || !strings.Contains(err.Error(), "the previous rules stay") || !strings.Contains(err.Error(), path) {
			t.Fatalf("reload of %q: %v", bad, err)
		}
		if !h.Rules().MayPush("ci", "nightly") {
			t.Fatalf("a bad file (%q) replaced the rules", bad)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Reload(); err == nil || !h.Rules().MayPush("ci", "nightly") {
		t.Fatalf("reload of a removed file: %v", err)
	}
}

func TestNewHolderHasNoFile(t *testing.T) {
	h := NewHolder(mustParse(t, example))
	if _, err := h.Reload(); err == nil {
		t.Fatal("reload without a file succeeded")
	}
	if !h.Rules().IsAdmin("ops") {
		t.Fatal("rules lost by a failed reload")
	}
}

// TestReloadWhileReading is for the race detector: readers judge requests
// while reloads swap the rules.
func TestReloadWhileReading(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authz.yml")
	writeFile(t, path, example)
	h, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := h.Rules()
				if !r.MayPush("ops", "x") || r.MayPush("ci", "nightly") {
					t.Error("inconsistent rules seen during reload")
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		if _, err := h.Reload(); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
}
