//go:build !linux

package cluster

import "errors"

// freeBytes is not implemented here: the free-space guard is off.
func freeBytes(string) (uint64, error) {
	return 0, errors.New("free space not available on this platform")
}
