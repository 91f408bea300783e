// Package freeport hands out loopback ports to tests and benchmarks that
// start processes which must be told their ports in advance.
//
// Picking a port by listening on port 0 and closing the listener is racy in
// two ways this package closes: the kernel may hand the same ephemeral port
// to the next caller (two nodes of one test then fight over it), and any
// outgoing connection may take it before the process it was meant for binds
// it. Ports here come from below the kernel's ephemeral range, are never
// handed out twice by one process, and are claimed across processes (test
// binaries of several packages run at once) by a lock file held until the
// process exits.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// lowest is the first port handed out; below it live well-known services.
const lowest = 10000

var (
	mu    sync.Mutex
	taken = map[int]bool{}
	next  int
	// held keeps the lock files open: closing one releases its claim.
	held []*os.File
)

// Take returns n distinct ports on 127.0.0.1, each free for TCP and UDP
// (memberlist uses both on its port) when it was checked.
func Take(n int) ([]int, error) {
	mu.Lock()
	defer mu.Unlock()
	lo, hi := lowest, ephemeralStart()
	if next == 0 {
		next = lo + rand.IntN(hi-lo)
	}
	var ports []int
	for tried := 0; len(ports) < n; tried++ {
		if tried >= hi-lo {
			return nil, fmt.Errorf("no free loopback port between %d and %d", lo, hi)
		}
		p := next
		if next++; next >= hi {
			next = lo
		}
		if taken[p] || !claim(p) {
			continue
		}
		taken[p] = true
		if free(p) {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// ephemeralStart is the first port of the kernel's ephemeral range (from
// which connections and port-0 listeners are given ports), 32768 when it
// cannot be read.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	p, err := strconv.Atoi(f[0])
	if err != nil || p <= lowest+1000 {
		return 32768
	}
	return p
}

// free reports whether 127.0.0.1:port can be bound for TCP and UDP now.
func free(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	return u.Close() == nil
}

// claim takes the port's lock file for the life of this process; false
// when another process holds it. Where lock files cannot be made, every
// port counts as claimed by us and only the in-process check remains.
func claim(port int) bool {
	dir := filepath.Join(os.TempDir(), "pushgateway-cluster-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := lock(f); err != nil {
		f.Close()
		return !errors.Is(err, errLocked)
	}
	held = append(held, f)
	return true
}

// errLocked says another process holds a port's lock file.
var errLocked = errors.New("port claimed by another process")
