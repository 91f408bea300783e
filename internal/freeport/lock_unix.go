//go:build unix

package freeport

import (
	"errors"
	"os"
	"syscall"
)

// lock takes an exclusive, non-blocking flock on f; the kernel drops it
// when the process exits, however it exits.
func lock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}
