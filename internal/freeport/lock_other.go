//go:build !unix

package freeport

import (
	"errors"
	"os"
)

// lock is not available here: ports are then unique within one process only.
func lock(*os.File) error { return errors.New("no file locks on this platform") }
