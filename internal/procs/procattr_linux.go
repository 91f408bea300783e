package procs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// dieWithParent makes the kernel kill the child when the thread that
// started it ends (the starter thread, which ends with the process).
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// processStopped reports whether the kernel shows pid in the stopped state
// ("T" in /proc/<pid>/stat): a SIGSTOP is delivered asynchronously, and a
// thread of the process may still answer a request until every thread has
// stopped.
func processStopped(pid int) (bool, error) {
	state, err := processState(pid)
	return state == 'T', err
}

// processState is the state letter of pid in /proc/<pid>/stat ('R', 'S',
// 'T' stopped, 'Z' ended but not reaped, ...).
func processState(pid int) (byte, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read state of %d: %w", pid, err)
	}
	// The state follows the command name in parentheses, which may itself
	// hold spaces and parentheses: take the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0, fmt.Errorf("state of %d: unexpected /proc stat %q", pid, stat)
	}
	return stat[i+2], nil
}
