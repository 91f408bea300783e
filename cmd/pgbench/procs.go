package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/freeport"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
)

// Target names.
const (
	targetUpstream = "upstream"
	targetOurs1    = "ours-1"
	targetOurs3    = "ours-3"
)

var allTargets = []string{targetUpstream, targetOurs1, targetOurs3}

// child is one gateway process started by the tool.
type child struct {
	*procs.Process
	name    string
	logPath string
	base    string // http://127.0.0.1:PORT
	// what started it, to start it again (restart.go)
	dir, bin string
	port     int
	args     []string
}

// exited reports whether the process is gone.
func (c *child) exited() bool { return !c.Running() }

// logTail is the end of the process' output, for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	const max = 3000
	if len(b) > max {
		b = append([]byte("…"), b[len(b)-max:]...)
	}
	return strings.TrimSpace(string(b))
}

// rss is the process' resident set size in bytes (VmRSS of /proc/PID/status).
func (c *child) rss() (float64, error) {
	return readStatusBytes(c.Pid(), "VmRSS")
}

// anonRSS is the anonymous part of the process' resident set in bytes
// (RssAnon: heap and stacks, without pages of mapped files).
func (c *child) anonRSS() (float64, error) {
	return readStatusBytes(c.Pid(), "RssAnon")
}

func readStatusBytes(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusBytes(b, field)
}

// parseStatusBytes reads a line such as "VmRSS:   12345 kB" from
// /proc/PID/status.
func parseStatusBytes(status []byte, field string) (float64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", field, sc.Text())
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected %s line %q", field, sc.Text())
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no %s in /proc/PID/status", field)
}

// instance is one running target: one or three processes, with a temp dir
// holding their storage and logs.
type instance struct {
	name  string
	dir   string
	nodes []*child
	// restartLogFrom is where the first node's log stood when restartAll
	// restarted it.
	restartLogFrom int64
}

// stop kills every process, waits for it and removes the temp dir. Safe to
// call more than once.
func (in *instance) stop() {
	for _, c := range in.nodes {
		if err := c.Kill(); err != nil {
			fmt.Fprintf(os.Stderr, "pgbench: %s (pid %d): %v\n", c.name, c.Pid(), err)
		}
	}
	if in.dir != "" {
		if err := os.RemoveAll(in.dir); err != nil {
			fmt.Fprintf(os.Stderr, "pgbench: remove %s: %v\n", in.dir, err)
		}
		in.dir = ""
	}
}

// startChild starts one gateway process with its output going to a log file
// in dir.
func startChild(name, dir, bin string, httpPort int, args []string) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p, err := procs.Start(name, append([]string{bin}, args...), procs.Options{Out: logf, Dir: dir})
	if err != nil {
		return nil, err
	}
	c := &child{Process: p, name: name, logPath: logPath, base: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		dir: dir, bin: bin, port: httpPort, args: args}
	return c, nil
}

// startTarget starts a fresh target (new temp dir, new ports) and waits until
// every node answers GET /-/ready with 200.
func startTarget(ctx context.Context, cfg *config, name string) (in *instance, err error) {
	dir, err := os.MkdirTemp("", "pgbench-"+name+"-")
	if err != nil {
		return nil, err
	}
	in = &instance{name: name, dir: dir}
	defer func() {
		if err != nil {
			in.stop()
			in = nil
		}
	}()
	switch name {
	case targetUpstream:
		ports, err := freeport.Take(1)
		if err != nil {
			return in, err
		}
		c, err := startChild("upstream", dir, cfg.upstreamAbs, ports[0], []string{
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports[0]),
			"--persistence.file=",
		})
		if err != nil {
			return in, err
		}
		in.nodes = append(in.nodes, c)
	case targetOurs1, targetOurs3:
		n := 1
		if name == targetOurs3 {
			n = 3
		}
		web, err := freeport.Take(n)
		if err != nil {
			return in, err
		}
		raft, err := freeport.Take(n)
		if err != nil {
			return in, err
		}
		gossip, err := freeport.Take(n)
		if err != nil {
			return in, err
		}
		for i := 0; i < n; i++ {
			node := fmt.Sprintf("n%d", i+1)
			storage := filepath.Join(dir, node)
			if err := os.MkdirAll(storage, 0o755); err != nil {
				return in, err
			}
			args := []string{
				fmt.Sprintf("--web.listen-address=127.0.0.1:%d", web[i]),
				"--storage.path=" + storage,
				fmt.Sprintf("--raft.listen-address=127.0.0.1:%d", raft[i]),
				fmt.Sprintf("--cluster.listen-address=127.0.0.1:%d", gossip[i]),
				"--cluster.node-name=" + node,
				"--web.enable-admin-api", // GET /api/v1/admin/snapshot
			}
			if n > 1 {
				args = append(args, fmt.Sprintf("--cluster.bootstrap-expect=%d", n))
				for _, p := range gossip {
					args = append(args, fmt.Sprintf("--cluster.peer=127.0.0.1:%d", p))
				}
			}
			c, err := startChild(node, dir, cfg.binaryAbs, web[i], args)
			if err != nil {
				return in, err
			}
			in.nodes = append(in.nodes, c)
		}
	default:
		return in, fmt.Errorf("unknown target %q", name)
	}
	return in, waitReady(ctx, in, cfg.startTimeout)
}

// waitReady waits until every node answers GET /-/ready with 200, and
// fails when one exits first, ctx ends or the timeout passes.
func waitReady(ctx context.Context, in *instance, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, c := range in.nodes {
		if err := c.WaitReady(ctx, c.base+"/-/ready"); err != nil {
			return fmt.Errorf("%s/%s: %w; its output:\n%s", in.name, c.name, err, c.logTail())
		}
	}
	return nil
}

// versionOf runs "bin --version" and returns its first line.
func versionOf(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// ensureUpstream installs Debian's prometheus-pushgateway when its binary is
// missing, as the issue asks (apt-get install; apt-get update first if the
// install fails).
func ensureUpstream(ctx context.Context, bin string, log func(string, ...any)) error {
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	if bin != "/usr/bin/prometheus-pushgateway" {
		return fmt.Errorf("upstream binary %s not found", bin)
	}
	var sudo []string
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("sudo"); err != nil {
			return errors.New("prometheus-pushgateway is not installed and we are not root (no sudo): apt-get install prometheus-pushgateway, or leave out the upstream target with --targets=ours-1,ours-3")
		}
		sudo = []string{"sudo"}
	}
	apt := func(args ...string) error {
		full := append(append([]string(nil), sudo...), append([]string{"apt-get"}, args...)...)
		log("running %s", strings.Join(full, " "))
		cmd := exec.CommandContext(ctx, full[0], full[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(full, " "), err, tail(string(out), 2000))
		}
		return nil
	}
	install := func() error { return apt("install", "-y", "-qq", "--no-install-recommends", "prometheus-pushgateway") }
	if err := install(); err != nil {
		if uerr := apt("update", "-qq"); uerr != nil {
			return uerr
		}
		if err := install(); err != nil {
			return err
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("prometheus-pushgateway installed but %s is missing", bin)
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
