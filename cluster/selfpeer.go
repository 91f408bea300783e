package cluster

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"
)

// A deployment often gives every node the same --cluster.peer list, which
// then names the node itself: a StatefulSet scaled to one, one VM with the
// standard flags. Joining oneself finds no other member, so such a peer is
// left out; a node whose every peer is itself starts as if it had none
// (and bootstraps alone with --cluster.bootstrap-expect=1). A node with
// other peers listed keeps trying to reach them and never bootstraps alone.

// resolveTimeout bounds the DNS lookup of one peer.
const resolveTimeout = 2 * time.Second

// otherPeers returns the configured peers that are not this node.
func (g *gossip) otherPeers(peers []string) []string {
	out := make([]string, 0, len(peers))
	for _, p := range peers {
		if !g.isSelf(p) {
			out = append(out, p)
		}
	}
	return out
}

// isSelf reports whether every address the peer resolves to is this
// node's own gossip listener: its port, and an address this node listens
// on (the advertise address, the bound address, or any local address when
// bound to all of them). A peer that does not resolve is not this node.
func (g *gossip) isSelf(peer string) bool {
	host, portStr, err := net.SplitHostPort(peer)
	if err != nil {
		return false
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return false
	}
	if port != g.advPort && port != g.bindPort {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	var localIPs []net.IP
	if g.bindIP == nil || g.bindIP.IsUnspecified() {
		ifaddrs, err := net.InterfaceAddrs()
		if err != nil {
			return false
		}
		for _, a := range ifaddrs {
			if ipn, ok := a.(*net.IPNet); ok {
				localIPs = append(localIPs, ipn.IP)
			}
		}
	}
	for _, a := range addrs {
		mine := a.IP.Equal(g.advIP) || a.IP.Equal(g.bindIP) ||
			slices.ContainsFunc(localIPs, func(ip net.IP) bool { return ip.Equal(a.IP) })
		if !mine {
			return false
		}
	}
	return true
}
