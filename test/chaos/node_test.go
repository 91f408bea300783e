package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/freeport"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// writeTimeout is every node's --cluster.write-timeout.
const writeTimeout = 3 * time.Second

// tail returns the last n lines of b.
func tail(b *testutil.LockedBuffer, n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// node is one pushgateway-cluster process. Its name, addresses and storage
// survive restarts.
type node struct {
	idx                 int
	name                string
	ns                  string // network namespace, "" on loopback
	web, raft, gossip   string // host:port
	dir                 string
	args                []string
	log                 *testutil.LockedBuffer
	client, fast, probe *http.Client

	mu      sync.Mutex
	proc    *procs.Process // the current run; nil before the first start
	starts  int
	started time.Time
}

func (n *node) url() string { return "http://" + n.web }

// current is the node's process of the latest start, or nil.
func (n *node) current() *procs.Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// start launches the process (in its namespace) without waiting for it.
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && n.proc.Running() {
		return fmt.Errorf("%s already running", n.name)
	}
	argv := append([]string{binary}, n.args...)
	if n.ns != "" {
		// ip netns exec execs the binary in place: the pid is the node's.
		argv = append([]string{"ip", "netns", "exec", n.ns}, argv...)
	}
	n.starts++
	fmt.Fprintf(n.log, "===== chaos: start #%d of %s at %s =====\n", n.starts, n.name, time.Now().Format("15:04:05.000"))
	// Nodes die with the test process, even if it is killed.
	p, err := procs.Start(n.name, argv, procs.Options{Out: n.log})
	if err != nil {
		return err
	}
	n.proc, n.started = p, time.Now()
	return nil
}

func (n *node) running() bool {
	p := n.current()
	return p != nil && p.Running()
}

func (n *node) isPaused() bool {
	p := n.current()
	return p != nil && p.Paused()
}

func (n *node) signal(s syscall.Signal) error {
	p := n.current()
	if p == nil {
		return fmt.Errorf("%s is not running", n.name)
	}
	return p.Signal(s)
}

// kill9 sends SIGKILL and waits for the process to go.
func (n *node) kill9() error {
	p := n.current()
	if p == nil || !p.Running() {
		return fmt.Errorf("%s is not running", n.name)
	}
	return p.Kill()
}

// stopGraceful sends SIGTERM (SIGCONT first if paused) and waits up to
// timeout. A node that does not stop by then gets SIGQUIT (the Go runtime
// writes every goroutine's stack to its log, kept in the artifacts), then
// SIGKILL, and an error is returned.
func (n *node) stopGraceful(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	p := n.current()
	if p == nil || !p.Running() {
		return 0, fmt.Errorf("%s is not running", n.name)
	}
	if err := p.Stop(timeout); err != nil {
		fmt.Fprintf(n.log, "===== chaos: %s still running %v after SIGTERM: SIGQUIT for a goroutine dump =====\n", n.name, timeout)
		_ = p.Signal(syscall.SIGQUIT)
		if p.Wait(5*time.Second) != nil {
			_ = p.Kill()
		}
		return time.Since(start), fmt.Errorf("graceful stop: %w (goroutine dump in its log)", err)
	}
	return time.Since(start), nil
}

// forceStop is the teardown: kill, ignoring errors.
func (n *node) forceStop() {
	if p := n.current(); p != nil {
		_ = p.Kill()
	}
}

// statusView is the part of /api/v1/cluster the test reads.
type statusView struct {
	Self   string `json:"self"`
	Leader string `json:"leader"`
	Raft   struct {
		State        string `json:"state"`
		Term         uint64 `json:"term"`
		LastIndex    uint64 `json:"last_index"`
		CommitIndex  uint64 `json:"commit_index"`
		AppliedIndex uint64 `json:"applied_index"`
	} `json:"raft"`
}

func (n *node) status(ctx context.Context) (statusView, error) {
	var env struct {
		Status string     `json:"status"`
		Data   statusView `json:"data"`
	}
	body, code, err := n.get(ctx, "/api/v1/cluster")
	if err != nil {
		return env.Data, err
	}
	if code != 200 {
		return env.Data, fmt.Errorf("GET /api/v1/cluster on %s: %d", n.name, code)
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return env.Data, fmt.Errorf("decode /api/v1/cluster of %s: %w", n.name, err)
	}
	return env.Data, nil
}

// get does a GET with the fast client (short timeout).
func (n *node) get(ctx context.Context, path string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url()+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := n.fast.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

// writeResult is the answer to one write.
type writeResult struct {
	status  int
	index   uint64
	err     error
	notSent bool // the connection was never established: certainly not applied
	body    string
}

// write sends PUT/POST/DELETE with the given client.
func (n *node) write(ctx context.Context, c *http.Client, method, path, body string) writeResult {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.url()+path, rd)
	if err != nil {
		return writeResult{err: err, notSent: true}
	}
	resp, err := c.Do(req)
	if err != nil {
		return writeResult{err: err, notSent: isDialError(err)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	res := writeResult{status: resp.StatusCode, body: strings.TrimSpace(string(b))}
	if h := resp.Header.Get("X-Pushgateway-Raft-Index"); h != "" {
		res.index, _ = strconv.ParseUint(h, 10, 64)
	}
	return res
}

// isDialError reports whether the request never reached the server: the
// TCP connection could not be established.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// cluster is the set of nodes of one run.
type cluster struct {
	t     *testing.T
	nw    *network
	nodes []*node
}

func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
}

// startCluster starts n nodes that bootstrap one cluster together.
func startCluster(t *testing.T, nw *network, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, nw: nw}
	var ports []string
	if !nw.netns {
		ports = freePorts(t, 3*n)
	}
	for i := 0; i < n; i++ {
		nd := &node{idx: i, name: fmt.Sprintf("n%d", i+1), ns: nw.namespace(i), dir: t.TempDir(), log: &testutil.LockedBuffer{}}
		if nw.netns {
			h := nw.host(i)
			nd.web, nd.gossip, nd.raft = h+":9091", h+":9094", h+":9095"
		} else {
			nd.web, nd.gossip, nd.raft = "127.0.0.1:"+ports[3*i], "127.0.0.1:"+ports[3*i+1], "127.0.0.1:"+ports[3*i+2]
		}
		tr := newTransport()
		nd.client = &http.Client{Transport: tr, Timeout: writeTimeout + 7*time.Second}
		nd.probe = &http.Client{Transport: tr, Timeout: writeTimeout + 2*time.Second}
		nd.fast = &http.Client{Transport: newTransport(), Timeout: 2 * time.Second}
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.args = []string{
			"--web.listen-address=" + nd.web,
			"--storage.path=" + nd.dir,
			"--raft.listen-address=" + nd.raft,
			"--cluster.listen-address=" + nd.gossip,
			"--cluster.node-name=" + nd.name,
			"--cluster.bootstrap-expect=" + strconv.Itoa(n),
			"--cluster.write-timeout=" + writeTimeout.String(),
		}
		for _, p := range c.nodes {
			nd.args = append(nd.args, "--cluster.peer="+p.gossip)
		}
	}
	unreg := registerEmergency(c.stopAll)
	t.Cleanup(func() {
		c.stopAll()
		unreg()
	})
	for _, nd := range c.nodes {
		if err := nd.start(); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *cluster) stopAll() {
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		wg.Add(1)
		go func(nd *node) { defer wg.Done(); nd.forceStop() }(nd)
	}
	wg.Wait()
}

func freePorts(t *testing.T, k int) []string {
	t.Helper()
	taken, err := freeport.Take(k)
	if err != nil {
		t.Fatalf("pick free ports: %v", err)
	}
	var ports []string
	for _, p := range taken {
		ports = append(ports, strconv.Itoa(p))
	}
	return ports
}

func (c *cluster) byName(name string) *node {
	for _, nd := range c.nodes {
		if nd.name == name {
			return nd
		}
	}
	return nil
}

// healthy reports the leader if every node runs, is ready and names the
// same leader, which reports itself as leader.
func (c *cluster) healthy(ctx context.Context) (string, error) {
	leader := ""
	for _, nd := range c.nodes {
		if !nd.running() || nd.isPaused() {
			return "", fmt.Errorf("%s not running", nd.name)
		}
		if _, code, err := nd.get(ctx, "/-/ready"); err != nil || code != 200 {
			return "", fmt.Errorf("%s not ready (%d %v)", nd.name, code, err)
		}
		st, err := nd.status(ctx)
		if err != nil {
			return "", err
		}
		if st.Leader == "" || (leader != "" && st.Leader != leader) {
			return "", fmt.Errorf("%s sees leader %q, others %q", nd.name, st.Leader, leader)
		}
		leader = st.Leader
	}
	l := c.byName(leader)
	if l == nil {
		return "", fmt.Errorf("unknown leader %q", leader)
	}
	st, err := l.status(ctx)
	if err != nil || st.Raft.State != "Leader" {
		return "", fmt.Errorf("%s is named leader but is %q (%v)", leader, st.Raft.State, err)
	}
	return leader, nil
}

// waitHealthy polls healthy until it holds or timeout passes.
func (c *cluster) waitHealthy(timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		leader, err := c.healthy(ctx)
		if err == nil {
			return leader, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("cluster not healthy within %v: %v", timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
