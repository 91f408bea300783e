package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// TestAuthorizationFileRefusesToStart: a rules file that does not parse,
// or one without basic_auth_users to name its users, stops the start with
// the reason.
func TestAuthorizationFileRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	withUsers := write("web.yml", "basic_auth_users:\n  ci: "+string(hash)+"\n")
	noUsers := write("web-tls-only.yml", "{}\n")
	good := write("authz.yml", "users:\n  ci:\n    push: [\"ci-*\"]\n")
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--web.authorization-file=" + good}, "needs --web.config.file with basic_auth_users"},
		{[]string{"--web.authorization-file=" + good, "--web.config.file=" + noUsers}, "needs --web.config.file with basic_auth_users"},
		{[]string{"--web.authorization-file=" + write("glob.yml", "users:\n  ci:\n    push: [\"ci-[\"]\n"), "--web.config.file=" + withUsers}, `user "ci": push glob "ci-[": syntax error in pattern`},
		{[]string{"--web.authorization-file=" + write("typo.yml", "users:\n  ci:\n    admn: true\n"), "--web.config.file=" + withUsers}, "field admn not found"},
		{[]string{"--web.authorization-file=" + write("empty.yml", ""), "--web.config.file=" + withUsers}, "no users key"},
		{[]string{"--web.authorization-file=" + filepath.Join(dir, "missing.yml"), "--web.config.file=" + withUsers}, "read authorization file"},
	} {
		args := append([]string{"--web.listen-address=" + testutil.FreeAddr(t), "--storage.path=" + t.TempDir(), "--raft.listen-address=" + testutil.FreeAddr(t),
			"--cluster.listen-address=" + testutil.FreeAddr(t), "--cluster.node-name=n1"}, c.flags...)
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--web.authorization-file") || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: want failure with %q, got %v:\n%s", c.flags, c.want, err, out)
		}
	}
}
