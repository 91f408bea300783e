package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// RemoveStaleNamespaces deletes the network namespaces that a test process
// which has ended left behind: those named prefix, a process ID and "-"
// (as the network tests name theirs), whose process is gone. A test
// deletes its namespaces (and with them their links and firewall rules)
// when it ends, but not when it is killed (a timeout, SIGKILL); the next
// one to make namespaces calls this first. A namespace whose process ID
// names a running process is kept, whoever runs it. It returns the names
// it deleted.
func RemoveStaleNamespaces(prefix string) ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var removed []string
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line) // "NAME" or "NAME (id: N)"
		if len(fields) == 0 {
			continue
		}
		name := fields[0]
		pid, ok := namespaceOwner(name, prefix)
		if !ok {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue
		}
		if msg, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			return removed, fmt.Errorf("ip netns del %s: %w: %s", name, err, strings.TrimSpace(string(msg)))
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// namespaceOwner returns the process ID in a namespace name of the form
// prefix, digits, "-", anything.
func namespaceOwner(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok || digits == "" {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != digits {
		return 0, false
	}
	return pid, true
}
