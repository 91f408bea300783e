//go:build linux

package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// A little network of namespaces for tests that cut hosts off: a hub
// namespace holding a bridge, and one namespace per host with a veth into
// the bridge and its own address. Everything lives in namespaces the test
// creates and deletes (the iptables rules inside them go with them); the
// machine's own network is untouched. The test process itself talks to the
// hub through a dialer that opens its sockets inside the hub namespace.

// netLab is one such network.
type netLab struct {
	t      *testing.T
	prefix string // namespace names start with it
	subnet string // "10.213.0."
	hosts  int
}

// requireNetLab skips the test unless this machine can make namespaces
// (root, iproute2, iptables).
func requireNetLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make test-deps)", tool)
		}
	}
}

// newNetLab creates the hub and hosts namespaces 1..hosts, with addresses
// subnet+i (hosts) and subnet+254 (hub). It deletes them when the test ends,
// and first those that test processes killed before their end left.
func newNetLab(t *testing.T, hosts int) *netLab {
	t.Helper()
	if removed, err := testutil.RemoveStaleNamespaces("pgc"); err != nil {
		t.Logf("namespaces left by ended tests not removed: %v", err)
	} else if len(removed) > 0 {
		t.Logf("removed namespaces left by ended tests: %s", strings.Join(removed, " "))
	}
	l := &netLab{t: t, prefix: fmt.Sprintf("pgc%d-", os.Getpid()), subnet: "10.213.0.", hosts: hosts}
	t.Cleanup(l.remove)
	hub := l.ns(0)
	l.run("ip", "netns", "add", hub)
	l.in(hub, "ip", "link", "set", "lo", "up")
	l.in(hub, "ip", "link", "add", "br0", "type", "bridge")
	l.in(hub, "ip", "addr", "add", l.subnet+"254/24", "dev", "br0")
	l.in(hub, "ip", "link", "set", "br0", "up")
	for i := 1; i <= hosts; i++ {
		ns := l.ns(i)
		l.run("ip", "netns", "add", ns)
		l.in(ns, "ip", "link", "set", "lo", "up")
		l.in(hub, "ip", "link", "add", fmt.Sprintf("vh%d", i), "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.in(hub, "ip", "link", "set", fmt.Sprintf("vh%d", i), "master", "br0", "up")
		l.in(ns, "ip", "addr", "add", fmt.Sprintf("%s%d/24", l.subnet, i), "dev", "eth0")
		l.in(ns, "ip", "link", "set", "eth0", "up")
	}
	return l
}

// ns is the name of host i's namespace (0: the hub).
func (l *netLab) ns(i int) string {
	if i == 0 {
		return l.prefix + "hub"
	}
	return fmt.Sprintf("%sh%d", l.prefix, i)
}

// addr is host i's address (0: the hub's).
func (l *netLab) addr(i int) string {
	if i == 0 {
		return l.subnet + "254"
	}
	return fmt.Sprintf("%s%d", l.subnet, i)
}

func (l *netLab) run(name string, args ...string) {
	l.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// in runs a command inside namespace ns.
func (l *netLab) in(ns string, name string, args ...string) {
	l.t.Helper()
	l.run("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// argv is the command line that runs a program inside host i's namespace;
// its process is the program itself (ip netns exec execs it), so signals
// sent to it reach the program.
func (l *netLab) argv(i int, name string, args ...string) []string {
	return append([]string{"ip", "netns", "exec", l.ns(i), name}, args...)
}

// cutOff drops host i's traffic on the given ports (TCP and UDP, both
// directions, on its link to the others) and keeps the rest, its HTTP
// port say, reachable. heal undoes it.
func (l *netLab) cutOff(i int, ports ...int) {
	l.t.Helper()
	for _, rule := range l.rules(ports) {
		l.in(l.ns(i), "iptables", append([]string{"-A"}, rule...)...)
	}
}

func (l *netLab) heal(i int, ports ...int) {
	l.t.Helper()
	for _, rule := range l.rules(ports) {
		l.in(l.ns(i), "iptables", append([]string{"-D"}, rule...)...)
	}
}

func (l *netLab) rules(ports []int) [][]string {
	var rules [][]string
	for _, p := range ports {
		for _, proto := range []string{"tcp", "udp"} {
			for _, dir := range [][2]string{{"INPUT", "-i"}, {"OUTPUT", "-o"}} {
				for _, side := range []string{"--dport", "--sport"} {
					rules = append(rules, []string{dir[0], dir[1], "eth0", "-p", proto, side, fmt.Sprint(p), "-j", "DROP"})
				}
			}
		}
	}
	return rules
}

// remove deletes every namespace of the lab (and with them their links and
// rules); processes still inside must have been stopped by then.
func (l *netLab) remove() {
	for i := l.hosts; i >= 0; i-- {
		_ = exec.Command("ip", "netns", "del", l.ns(i)).Run()
	}
}

// client returns an HTTP client whose connections are opened inside the
// hub namespace.
func (l *netLab) client(timeout time.Duration) *http.Client {
	path := "/var/run/netns/" + l.ns(0)
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialInNamespace(ctx, path, network, addr)
		},
	}}
}

// dialInNamespace opens a connection from inside the network namespace at
// path: the socket is created on an OS thread switched into it, and keeps
// belonging to it when the thread switches back.
func dialInNamespace(ctx context.Context, path, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	own, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer own.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	conn, dialErr := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err := setns(own); err != nil {
		// The thread stays locked and ends with this goroutine rather
		// than serving others from the wrong namespace.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("switch back to the test's namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return conn, dialErr
}

func setns(f *os.File) error {
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", f.Name(), err)
	}
	return nil
}
