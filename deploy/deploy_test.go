// Package deploy holds deployment files (Kubernetes manifests, systemd unit);
// this test checks that they are well-formed, consistent with each other and
// use only flags the binary knows.
package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
)

const (
	k8sDir     = "kubernetes"
	systemdDir = "systemd"
	unitFile   = "systemd/pushgateway-cluster.service"
	envFile    = "systemd/pushgateway-cluster.default"
	binaryName = "pushgateway-cluster"
)

// binaryPath and knownFlags are set by TestMain from the built binary.
var (
	binaryPath string
	knownFlags map[string]flagInfo
)

type flagInfo struct {
	bool       bool   // --[no-]name
	repeatable bool   // "..." in the help
	def        string // default value shown by --help ("" if none)
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binaryPath, err = procs.Build(dir, "./cmd/pushgateway-cluster"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out, err := exec.Command(binaryPath, "--help").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s --help: %v\n%s", binaryName, err, out)
		return 1
	}
	knownFlags = parseHelp(string(out))
	if len(knownFlags) == 0 {
		fmt.Fprintf(os.Stderr, "no flags found in --help output:\n%s", out)
		return 1
	}
	return m.Run()
}

// helpFlagRe matches a flag line of kingpin's help (flags are indented by
// a few spaces, wrapped descriptions by many), e.g.
// `      --cluster.peer=CLUSTER.PEER ...`, `  -h, --[no-]help`,
// `      --storage.path="data/"`.
var helpFlagRe = regexp.MustCompile(`^\s{1,8}(?:-\w, )?--(\[no-\])?([A-Za-z0-9][A-Za-z0-9._-]*)(?:=(\S*))?(\s+\.\.\.)?`)

func parseHelp(help string) map[string]flagInfo {
	flags := map[string]flagInfo{}
	for _, line := range strings.Split(help, "\n") {
		m := helpFlagRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		def := m[3]
		if unq, err := strconv.Unquote(def); err == nil {
			def = unq
		} else if def != "" && strings.ToUpper(def) == def && strings.ContainsAny(def, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			def = "" // a placeholder such as CLUSTER.PEER
		}
		flags[m[2]] = flagInfo{bool: m[1] != "", repeatable: m[4] != "", def: def}
	}
	return flags
}

func TestHelpParsing(t *testing.T) {
	for name, want := range map[string]flagInfo{
		"storage.path":             {def: "data/"},
		"cluster.peer":             {repeatable: true},
		"cluster.bootstrap-expect": {def: "1"},
		"web.listen-address":       {repeatable: true, def: ":9091"},
		"web.enable-admin-api":     {bool: true},
	} {
		if got, ok := knownFlags[name]; !ok || got != want {
			t.Errorf("--help: flag %s parsed as %+v (found %v), want %+v", name, got, ok, want)
		}
	}
}
