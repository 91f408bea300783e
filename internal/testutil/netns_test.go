package testutil

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNamespaceOwner(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"pgc123-hub", 123, true},
		{"pgc123-h1", 123, true},
		{"pgcc123-hub", 0, false}, // another prefix
		{"pgc123", 0, false},
		{"pgc-hub", 0, false},
		{"pgc0123-hub", 0, false},
		{"pgcx1-hub", 0, false},
		{"other", 0, false},
	} {
		if pid, ok := namespaceOwner(c.name, "pgc"); pid != c.pid || ok != c.ok {
			t.Errorf("namespaceOwner(%q) = %d, %v; want %d, %v", c.name, pid, ok, c.pid, c.ok)
		}
	}
}

// TestRemoveStaleNamespaces makes a namespace named for a process that has
// ended and one named for this process: only the first is removed.
func TestRemoveStaleNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (apt-get install iproute2)")
	}
	ended := exec.Command("true")
	if err := ended.Run(); err != nil {
		t.Fatal(err)
	}
	gone := ended.Process.Pid
	if _, err := os.Stat("/proc/" + strconv.Itoa(gone)); err == nil {
		t.Skipf("process ID %d was taken again at once", gone)
	}
	const prefix = "pgcsweeptest"
	stale := prefix + strconv.Itoa(gone) + "-hub"
	live := prefix + strconv.Itoa(os.Getpid()) + "-hub"
	for _, ns := range []string{stale, live} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Skipf("ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	removed, err := RemoveStaleNamespaces(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{stale}) {
		t.Errorf("removed %q, want only %q", removed, stale)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if list := string(out); strings.Contains(list, stale) || !strings.Contains(list, live) {
		t.Errorf("after the sweep:\n%s", list)
	}
}
