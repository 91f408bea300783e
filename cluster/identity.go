package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// A node's identity and addresses: its persisted name and the concrete
// addresses it advertises (never 0.0.0.0).

// loadOrPersistName returns the node name stored in dataDir, or stores and
// returns the wanted one (the hostname if empty) on first start. A wanted
// name that differs from the stored one is an error: the name is the raft
// server ID and must not change under existing state.
func loadOrPersistName(dataDir, wanted string) (string, error) {
	path := filepath.Join(dataDir, "node-name")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(b))
		if wanted != "" && wanted != stored {
			return "", fmt.Errorf("node name %q given, but %s holds state of node %q; the name cannot change", wanted, dataDir, stored)
		}
		return stored, nil
	case !os.IsNotExist(err):
		return "", fmt.Errorf("read node name: %w", err)
	}
	name := wanted
	if name == "" {
		if name, err = os.Hostname(); err != nil || name == "" {
			return "", fmt.Errorf("no --cluster.node-name given and no hostname: %v", err)
		}
	}
	if err := os.WriteFile(path, []byte(name+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("persist node name: %w", err)
	}
	return name, nil
}

// advertiseAddr returns the address to advertise: the explicit one, or the
// listener's if it is concrete, or else the first private (then any
// non-loopback) interface address. It never returns an unspecified address.
func advertiseAddr(explicit string, bound net.Addr) (*net.TCPAddr, error) {
	if explicit != "" {
		a, err := net.ResolveTCPAddr("tcp", explicit)
		if err != nil {
			return nil, fmt.Errorf("resolve advertise address %q: %w", explicit, err)
		}
		if a.IP == nil || a.IP.IsUnspecified() {
			return nil, fmt.Errorf("advertise address %q is not a concrete address", explicit)
		}
		return a, nil
	}
	tcp, ok := bound.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("unexpected listener address %v", bound)
	}
	if !tcp.IP.IsUnspecified() {
		return tcp, nil
	}
	ip, err := defaultIP()
	if err != nil {
		return nil, fmt.Errorf("listening on %v and no advertise address given: %w", bound, err)
	}
	return &net.TCPAddr{IP: ip, Port: tcp.Port}, nil
}

// defaultIP picks an interface address to advertise: a private IPv4
// address first, any global unicast next, loopback last.
func defaultIP() (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var global, loopback net.IP
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil {
			continue
		}
		switch {
		case ipn.IP.IsPrivate():
			return ipn.IP, nil
		case ipn.IP.IsGlobalUnicast() && global == nil:
			global = ipn.IP
		case ipn.IP.IsLoopback() && loopback == nil:
			loopback = ipn.IP
		}
	}
	if global != nil {
		return global, nil
	}
	if loopback != nil {
		return loopback, nil
	}
	return nil, errors.New("no usable interface address")
}

// isLoopback reports whether a listener address is a loopback address
// (reachable from this machine only).
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
