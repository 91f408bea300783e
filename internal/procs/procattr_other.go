//go:build !linux

package procs

import "syscall"

// dieWithParent: only Linux can tie a child's life to its parent's.
func dieWithParent() *syscall.SysProcAttr { return nil }

// processStopped: without /proc the stop cannot be observed; the signal is
// taken as delivered.
func processStopped(int) (bool, error) { return true, nil }
