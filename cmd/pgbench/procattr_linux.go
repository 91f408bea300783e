package main

import "syscall"

// childProcAttr makes the kernel kill a gateway when the tool dies without
// cleaning up (SIGKILL of the tool, a crash).
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
