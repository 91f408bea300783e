package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// network is where the nodes live: either one network namespace per node,
// bridged in a hub namespace of their own (partitions possible), or plain
// loopback (no partitions: loopback traffic between processes of one
// namespace cannot be cut without cutting the test's own access).
//
// Namespace layout (prefix P = "pgcc<pid>", subnet S = 10.77.X.0/24):
//
//	P-hub:  bridge br0, ports n1..nN and uplink; its own (empty) firewall
//	P-nI:   eth0 = S.I/24 (veth peer of P-hub's nI), lo; node I runs here
//	root:   P = S.254/24 (veth peer of P-hub's uplink): the test's clients
//
// The bridge is not in the root namespace because the host's firewall may
// drop bridged traffic (Docker sets FORWARD to DROP and br_netfilter hands
// bridged frames to it); the hub namespace has its own empty firewall.
// Partitions are iptables DROP rules (INPUT, on both sides) inside the node
// namespaces between node addresses only: the test's clients still reach every node, so a
// minority is observed answering (503/504) rather than timing out.
type network struct {
	netns     bool
	reason    string // why loopback, when netns is false
	prefix    string // P
	subnet    string // "10.77.X"
	n         int
	linkMode  bool // partitions by link down (no iptables in namespaces)
	mu        sync.Mutex
	cut       map[int]bool // nodes currently partitioned away
	closeOnce sync.Once
	unreg     func()
}

// ipCmd runs ip (or another tool) and returns its error with the output.
func ipCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNetwork builds n node namespaces, or falls back to loopback with a
// reason. CHAOS_NETNS=0 forces loopback.
func setupNetwork(t *testing.T, n int) *network {
	t.Helper()
	nw := &network{n: n, cut: map[int]bool{}}
	switch {
	case os.Getenv("CHAOS_NETNS") == "0":
		nw.reason = "CHAOS_NETNS=0"
	case os.Geteuid() != 0:
		nw.reason = "not root: network namespaces need CAP_NET_ADMIN"
	default:
		if _, err := exec.LookPath("ip"); err != nil {
			nw.reason = "no ip command (apt-get install iproute2)"
		}
	}
	if nw.reason != "" {
		t.Logf("network: loopback (%s); partition faults are skipped", nw.reason)
		return nw
	}
	nw.prefix = "pgcc" + strconv.Itoa(os.Getpid())
	nw.unreg = registerEmergency(nw.close)
	t.Cleanup(nw.close)
	if err := nw.create(); err != nil {
		nw.close()
		nw.reason = "network namespaces not usable: " + err.Error()
		t.Logf("network: loopback (%s); partition faults are skipped", nw.reason)
		return &network{n: n, reason: nw.reason, cut: map[int]bool{}}
	}
	nw.netns = true
	mode := "iptables DROP between node addresses"
	if nw.linkMode {
		mode = "link down (iptables unusable in namespaces; a cut node is unreachable for clients too)"
	}
	t.Logf("network: one namespace per node on %s.0/24, bridged in %s-hub; partitions by %s", nw.subnet, nw.prefix, mode)
	return nw
}

func (nw *network) hubNS() string       { return nw.prefix + "-hub" }
func (nw *network) nodeNS(i int) string { return fmt.Sprintf("%s-n%d", nw.prefix, i+1) }
func (nw *network) nodeIP(i int) string { return fmt.Sprintf("%s.%d", nw.subnet, i+1) }
func (nw *network) rootLink() string    { return nw.prefix }
func (nw *network) canPartition() bool  { return nw.netns }
func (nw *network) host(i int) string {
	if !nw.netns {
		return "127.0.0.1"
	}
	return nw.nodeIP(i)
}
func (nw *network) namespace(i int) string {
	if !nw.netns {
		return ""
	}
	return nw.nodeNS(i)
}

// pickSubnet finds 10.77.X.0/24 with no address or route of this host in it.
func pickSubnet() (string, error) {
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ip addr show: %v", err)
	}
	routes, err := exec.Command("ip", "-4", "route", "show", "table", "all").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ip route show: %v", err)
	}
	used := string(out) + "\n" + string(routes)
	start := 10 + os.Getpid()%200
	for k := 0; k < 240; k++ {
		x := 10 + (start-10+k)%240
		s := fmt.Sprintf("10.77.%d", x)
		if !strings.Contains(used, s+".") {
			return s, nil
		}
	}
	return "", fmt.Errorf("no free 10.77.X.0/24")
}

func (nw *network) create() error {
	subnet, err := pickSubnet()
	if err != nil {
		return err
	}
	nw.subnet = subnet
	hub := nw.hubNS()
	steps := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "link", "set", "br0", "up"},
	}
	for i := 0; i < nw.n; i++ {
		ns, port := nw.nodeNS(i), fmt.Sprintf("n%d", i+1)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", "name", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", hub},
			[]string{"-n", hub, "link", "set", port, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", nw.nodeIP(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	steps = append(steps,
		[]string{"link", "add", nw.rootLink(), "type", "veth", "peer", "name", "uplink", "netns", hub},
		[]string{"-n", hub, "link", "set", "uplink", "master", "br0", "up"},
		[]string{"addr", "add", nw.subnet + ".254/24", "dev", nw.rootLink()},
		[]string{"link", "set", nw.rootLink(), "up"},
	)
	for _, s := range steps {
		if err := ipCmd("ip", s...); err != nil {
			return err
		}
	}
	// iptables inside a node namespace (nf_tables or legacy, either works).
	// CHAOS_PARTITION=link forces the fallback, to test it.
	if err := ipCmd("ip", "netns", "exec", nw.nodeNS(0), "iptables", "-w", "-S"); err != nil || os.Getenv("CHAOS_PARTITION") == "link" {
		nw.linkMode = true
	}
	return nil
}

// partition cuts the nodes in minority off from every other node, in both
// directions; the minority nodes still reach each other. Clients reach
// everyone (except in link mode).
func (nw *network) partition(minority []int) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if !nw.netns {
		return fmt.Errorf("partitions need network namespaces (%s)", nw.reason)
	}
	in := map[int]bool{}
	for _, i := range minority {
		in[i] = true
	}
	for _, i := range minority {
		nw.cut[i] = true
		if nw.linkMode {
			if err := ipCmd("ip", "-n", nw.hubNS(), "link", "set", fmt.Sprintf("n%d", i+1), "down"); err != nil {
				return err
			}
		}
	}
	if nw.linkMode {
		return nil
	}
	for i := 0; i < nw.n; i++ {
		for j := 0; j < nw.n; j++ {
			if in[i] == in[j] {
				continue
			}
			// INPUT only, on both sides: packets leave the sender and are
			// silently lost, as in a real partition (an OUTPUT DROP would
			// fail the sender's sendto with EPERM at once).
			if err := ipCmd("ip", "netns", "exec", nw.nodeNS(i), "iptables", "-w", "-A", "INPUT", "-s", nw.nodeIP(j), "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	return nil
}

// heal removes every partition.
func (nw *network) heal() error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if !nw.netns {
		return nil
	}
	var errs []string
	for i := 0; i < nw.n; i++ {
		if nw.linkMode {
			if nw.cut[i] {
				if err := ipCmd("ip", "-n", nw.hubNS(), "link", "set", fmt.Sprintf("n%d", i+1), "up"); err != nil {
					errs = append(errs, err.Error())
				}
			}
			continue
		}
		if err := ipCmd("ip", "netns", "exec", nw.nodeNS(i), "iptables", "-w", "-F", "INPUT"); err != nil {
			errs = append(errs, err.Error())
		}
	}
	nw.cut = map[int]bool{}
	if len(errs) > 0 {
		return fmt.Errorf("heal: %s", strings.Join(errs, "; "))
	}
	return nil
}

// close deletes the root veth and every namespace of this run.
func (nw *network) close() {
	if nw.prefix == "" {
		return
	}
	nw.closeOnce.Do(func() {
		deleteNetwork(nw.prefix, nw.n)
		if nw.unreg != nil {
			nw.unreg()
		}
	})
}

func deleteNetwork(prefix string, n int) {
	_ = ipCmd("ip", "link", "del", prefix)
	for i := 0; i < n; i++ {
		_ = ipCmd("ip", "netns", "del", fmt.Sprintf("%s-n%d", prefix, i+1))
	}
	_ = ipCmd("ip", "netns", "del", prefix+"-hub")
}

// removeStaleNetworks deletes namespaces (and root veths) left by chaos
// runs whose process is gone (killed before its cleanup ran).
func removeStaleNetworks() {
	if os.Geteuid() != 0 {
		return
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return // no namespaces were made either
	}
	removed, err := testutil.RemoveStaleNamespaces("pgcc")
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: namespaces left by ended runs: %v\n", err)
	}
	stale := map[string]bool{}
	for _, ns := range removed {
		prefix, _, _ := strings.Cut(ns, "-")
		stale[prefix] = true
	}
	for p := range stale {
		// Gone with its peer in the hub namespace, unless that was never
		// made.
		_ = ipCmd("ip", "link", "del", p)
	}
}
