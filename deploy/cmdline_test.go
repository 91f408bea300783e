package deploy

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Command lines: the product flags that the manifests, units and docs pass,
// checked against the binary's --help.

type arg struct {
	name  string // without "--"
	value string
	has   bool // "=value" given
}

// parseArgs splits a command line into flags; every element must be a flag.
func parseArgs(t *testing.T, where string, args []string) []arg {
	t.Helper()
	var out []arg
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("%s: %q is not a --flag (the binary takes no positional arguments)", where, a)
			continue
		}
		name, value, has := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		out = append(out, arg{name: name, value: value, has: has})
	}
	return out
}

// checkFlags checks that every flag exists, that non-repeatable flags appear
// once and that values fit the type suggested by the default.
func checkFlags(t *testing.T, where string, args []arg) {
	t.Helper()
	seen := map[string]int{}
	for _, a := range args {
		name := a.name
		info, ok := knownFlags[name]
		if !ok && strings.HasPrefix(name, "no-") {
			if i, ok2 := knownFlags[strings.TrimPrefix(name, "no-")]; ok2 && i.bool {
				name, info, ok = strings.TrimPrefix(name, "no-"), i, true
			}
		}
		if !ok {
			t.Errorf("%s: --%s is not a flag of %s (see --help)", where, a.name, binaryName)
			continue
		}
		seen[name]++
		if seen[name] == 2 && !info.repeatable {
			t.Errorf("%s: --%s given more than once; only the last one counts", where, name)
		}
		switch {
		case info.bool:
			if a.has {
				if _, err := strconv.ParseBool(a.value); err != nil {
					t.Errorf("%s: --%s=%q: not a boolean", where, name, a.value)
				}
			}
		case !a.has:
			t.Errorf("%s: --%s needs a value (--%s=...)", where, name, name)
		case isInt(info.def):
			if !isInt(a.value) {
				t.Errorf("%s: --%s=%q: want an integer like its default %q", where, name, a.value, info.def)
			}
		case isDuration(info.def):
			if !isDuration(a.value) {
				t.Errorf("%s: --%s=%q: want a duration like its default %q", where, name, a.value, info.def)
			}
		}
	}
}

func isInt(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func isDuration(s string) bool {
	_, err := time.ParseDuration(s)
	return err == nil && !isInt(s)
}

func values(args []arg, name string) []string {
	var vs []string
	for _, a := range args {
		if a.name == name {
			vs = append(vs, a.value)
		}
	}
	return vs
}

// value returns the last value of a flag, or its default from --help.
func value(args []arg, name string) string {
	if vs := values(args, name); len(vs) > 0 {
		return vs[len(vs)-1]
	}
	return knownFlags[name].def
}

func port(t *testing.T, where, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%s: %q: %v", where, hostport, err)
		return 0
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Errorf("%s: %q: port is not a number", where, hostport)
	}
	return n
}

// dottedFlagRe finds flag-like words (--name.with-dots) in any text.
var dottedFlagRe = regexp.MustCompile(`--((?:\[no-\])?[a-z0-9-]+\.[a-z0-9.-]*[a-z0-9])`)

// TestDocumentedFlagsExist checks every --section.flag mentioned anywhere in
// the deployment files, READMEs and comments included.
func TestDocumentedFlagsExist(t *testing.T) {
	for _, dir := range []string{k8sDir, systemdDir} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			path := filepath.Join(dir, e.Name())
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range dottedFlagRe.FindAllStringSubmatch(string(data), -1) {
				name := strings.TrimPrefix(m[1], "[no-]")
				if _, ok := knownFlags[name]; !ok {
					t.Errorf("%s mentions --%s, which %s does not have", path, name, binaryName)
				}
			}
		}
	}
}
