// Package house checks the project's layering and room sizes (DESIGN.md,
// "Packages"): rules that a refactoring must keep, held by a test.
package house

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/pushgateway-cluster/pushgateway-cluster"

type pkg struct {
	ImportPath string
	Dir        string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p
	}
	return pkgs
}

// TestLayering: fsm imports nothing of ours, httpapi nothing of cluster,
// cluster nothing of httpapi (only cmd wires them).
func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	forbidden := map[string][]string{
		"fsm":     {""}, // nothing of the module
		"httpapi": {"cluster"},
		"cluster": {"httpapi", "cmd"},
	}
	for name, bans := range forbidden {
		p, ok := pkgs[name]
		if !ok {
			t.Fatalf("no package %s", name)
		}
		for _, imp := range p.Imports {
			rel, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			rel = strings.TrimPrefix(rel, "/")
			for _, ban := range bans {
				if ban == "" || rel == ban || strings.HasPrefix(rel, ban+"/") {
					t.Errorf("%s imports %s", name, imp)
				}
			}
		}
	}
}

// maxLines is the size from which a non-test Go file must say in its
// header why it is that long.
const maxLines = 500

// TestNoOversizedRooms: no non-test Go file over maxLines lines unless its
// opening comment gives a reason (a line containing "long because").
func TestNoOversizedRooms(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, f := range p.GoFiles {
			path := filepath.Join(p.Dir, f)
			lines, reason := countLines(t, path)
			if lines > maxLines && !reason {
				t.Errorf("%s has %d lines (over %d) and no reason in its header", path, lines, maxLines)
			}
		}
	}
}

func countLines(t *testing.T, path string) (int, bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n, reason, header := 0, false, true
	for sc.Scan() {
		n++
		line := sc.Text()
		if header && !strings.HasPrefix(line, "//") && strings.TrimSpace(line) != "" {
			header = false
		}
		if header && strings.Contains(line, "long because") {
			reason = true
		}
	}
	return n, reason
}
