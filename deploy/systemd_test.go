package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// systemd (deploy/systemd): the unit and its environment file, parsed as
// systemd would, and checked against the binary.

// unit is a parsed systemd unit: section -> key -> values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	lineNo := 0
	var pending string
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("%s:%d: bad section header %q", path, lineNo, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not a key=value line in a section: %q", path, lineNo, line)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		u[section][key] = append(u[section][key], val)
	}
	if pending != "" {
		t.Fatalf("%s: ends in a continuation line", path)
	}
	return u
}

func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// systemdSeconds parses a time span such as "60", "60s" or "1min".
func systemdSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	r := strings.NewReplacer("min", "m", "sec", "s", " ", "")
	d, err := time.ParseDuration(r.Replace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a time span", s)
	}
	return d, nil
}

func isTrue(s string) bool {
	switch strings.ToLower(s) {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}

// parseEnvFile reads KEY=value lines the way systemd's EnvironmentFile= does
// for the forms used here: comments, double quotes, backslash-newline.
func parseEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	text := string(data)
	for len(text) > 0 {
		line, rest, _ := strings.Cut(text, "\n")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' {
			text = rest
			continue
		}
		key, val, ok := strings.Cut(trimmed, "=")
		if !ok {
			t.Fatalf("%s: not KEY=value: %q", path, trimmed)
		}
		key = strings.TrimSpace(key)
		if !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(key) {
			t.Fatalf("%s: bad variable name %q", path, key)
		}
		// Re-join the value with the rest of the file for quoted or
		// continued values.
		val = strings.TrimLeft(val, " \t")
		full := val + "\n" + rest
		var b strings.Builder
		i := 0
		if strings.HasPrefix(full, `"`) {
			i = 1
			for ; ; i++ {
				if i >= len(full) {
					t.Fatalf("%s: unterminated quote in %s", path, key)
				}
				c := full[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' && i+1 < len(full) {
					switch n := full[i+1]; n {
					case '\n':
						i++
						continue
					case '"', '\\', '$', '`':
						b.WriteByte(n)
						i++
						continue
					}
				}
				b.WriteByte(c)
			}
			// nothing but blanks may follow the closing quote
			after, next, _ := strings.Cut(full[i:], "\n")
			if strings.TrimSpace(after) != "" {
				t.Fatalf("%s: text after the closing quote of %s: %q", path, key, after)
			}
			text = next
		} else {
			for ; i < len(full); i++ {
				c := full[i]
				if c == '\n' {
					i++
					break
				}
				if c == '\\' && i+1 < len(full) {
					if full[i+1] != '\n' {
						b.WriteByte(full[i+1])
					}
					i++
					continue
				}
				b.WriteByte(c)
			}
			text = full[min(i, len(full)):]
		}
		env[key] = strings.TrimSpace(b.String())
	}
	return env
}

// expandExecStart splits ExecStart into words, replacing $VAR (split on
// whitespace, as systemd does) and ${VAR} (one word) from env.
func expandExecStart(t *testing.T, cmdline string, env map[string]string) []string {
	t.Helper()
	var words []string
	for _, w := range strings.Fields(cmdline) {
		switch {
		case strings.HasPrefix(w, "${") && strings.HasSuffix(w, "}"):
			words = append(words, env[w[2:len(w)-1]])
		case strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "$$"):
			words = append(words, strings.Fields(env[w[1:]])...)
		default:
			if strings.ContainsAny(w, `"'`) {
				t.Errorf("ExecStart word %q: quoting is not handled by this test; avoid it", w)
			}
			words = append(words, w)
		}
	}
	return words
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, unitFile)
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Errorf("%s: no [%s] section", unitFile, s)
		}
	}
	want := map[string]string{
		"User":            "pushgateway",
		"Group":           "pushgateway",
		"StateDirectory":  binaryName,
		"Restart":         "on-failure",
		"KillSignal":      "SIGTERM",
		"EnvironmentFile": "-/etc/default/" + binaryName,
		"ProtectSystem":   "strict",
	}
	for k, v := range want {
		if got := u.get("Service", k); got != v {
			t.Errorf("%s: %s=%q, want %q", unitFile, k, got, v)
		}
	}
	for _, k := range []string{"NoNewPrivileges", "ProtectHome"} {
		if !isTrue(u.get("Service", k)) {
			t.Errorf("%s: %s=%q, want yes", unitFile, k, u.get("Service", k))
		}
	}
	if d, err := systemdSeconds(u.get("Service", "TimeoutStopSec")); err != nil {
		t.Errorf("%s: TimeoutStopSec: %v", unitFile, err)
	} else if d < 30*time.Second {
		t.Errorf("%s: TimeoutStopSec=%s, want at least 30s for a leadership transfer", unitFile, d)
	}
	if got := u.get("Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("%s: WantedBy=%q, want multi-user.target", unitFile, got)
	}

	execStart := u["Service"]["ExecStart"]
	if len(execStart) != 1 {
		t.Fatalf("%s: %d ExecStart lines, want 1", unitFile, len(execStart))
	}
	if !strings.Contains(execStart[0], "$ARGS") {
		t.Errorf("%s: ExecStart does not pass $ARGS from the EnvironmentFile: %q", unitFile, execStart[0])
	}
	words := expandExecStart(t, strings.TrimLeft(execStart[0], "-@:+!"), nil)
	if len(words) == 0 || !filepath.IsAbs(words[0]) || filepath.Base(words[0]) != binaryName {
		t.Fatalf("%s: ExecStart does not run an absolute path to %s: %q", unitFile, binaryName, execStart[0])
	}
	if words[0] != "/usr/local/bin/"+binaryName {
		t.Errorf("%s: ExecStart runs %s, want /usr/local/bin/%s (as README.md installs it)", unitFile, words[0], binaryName)
	}
	args := parseArgs(t, unitFile+" ExecStart", words[1:])
	checkFlags(t, unitFile+" ExecStart", args)
	stateDir := "/var/lib/" + u.get("Service", "StateDirectory")
	if got := values(args, "storage.path"); len(got) != 1 || strings.TrimSuffix(got[0], "/") != stateDir {
		t.Errorf("%s: ExecStart --storage.path=%v, want exactly one --storage.path=%s (the StateDirectory)", unitFile, got, stateDir)
	}
	if wd := u.get("Service", "WorkingDirectory"); wd != "" && wd != stateDir {
		t.Errorf("%s: WorkingDirectory=%s is not the state directory %s", unitFile, wd, stateDir)
	}
}

func TestSystemdEnvironmentFile(t *testing.T) {
	u := parseUnit(t, unitFile)
	env := parseEnvFile(t, envFile)
	if _, ok := env["ARGS"]; !ok {
		t.Fatalf("%s: no ARGS", envFile)
	}
	for k := range env {
		if k != "ARGS" {
			t.Errorf("%s: %s is set but the unit only uses $ARGS", envFile, k)
		}
	}
	// The complete command line, as systemd would run it.
	words := expandExecStart(t, strings.TrimLeft(u["Service"]["ExecStart"][0], "-@:+!"), env)
	args := parseArgs(t, "ExecStart with "+envFile, words[1:])
	checkFlags(t, "ExecStart with "+envFile, args)
	if got := values(args, "storage.path"); len(got) != 1 {
		t.Errorf("%s: --storage.path is set by the unit; ARGS must not set it again (got %v)", envFile, got)
	}

	if got := value(args, "cluster.node-name"); got != "pg1" {
		t.Errorf("%s: --cluster.node-name=%q, want pg1 (the example is pg1's file)", envFile, got)
	}
	peers := values(args, "cluster.peer")
	expect, _ := strconv.Atoi(value(args, "cluster.bootstrap-expect"))
	if expect != 3 || len(peers) != 3 {
		t.Errorf("%s: --cluster.bootstrap-expect=%d with %d peers, want 3 and 3", envFile, expect, len(peers))
	}
	gossipPort := port(t, "--cluster.listen-address", value(args, "cluster.listen-address"))
	raftPort := port(t, "--raft.listen-address", value(args, "raft.listen-address"))
	self := map[string]bool{}
	for _, p := range peers {
		host, _, _ := net.SplitHostPort(p)
		if port(t, "--cluster.peer", p) != gossipPort {
			t.Errorf("%s: --cluster.peer=%s: not the gossip port %d", envFile, p, gossipPort)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsPrivate() {
			t.Errorf("%s: --cluster.peer=%s: want a private documentation address", envFile, p)
		}
		self[host] = true
	}
	for _, f := range []struct {
		name string
		port int
	}{{"cluster.advertise-address", gossipPort}, {"raft.advertise-address", raftPort}} {
		v := value(args, f.name)
		host, _, err := net.SplitHostPort(v)
		if err != nil {
			t.Errorf("%s: --%s=%q: %v", envFile, f.name, v, err)
			continue
		}
		if port(t, "--"+f.name, v) != f.port {
			t.Errorf("%s: --%s=%s: port differs from the listen port %d", envFile, f.name, v, f.port)
		}
		if host != "10.0.0.11" || !self[host] {
			t.Errorf("%s: --%s=%s: want pg1's address 10.0.0.11, one of the peers", envFile, f.name, v)
		}
	}

	// A shell that sources the file (as init scripts do) must see the same.
	if sh, err := exec.LookPath("sh"); err == nil {
		out, err := exec.Command(sh, "-c", `. "$1" && printf '%s\n' "$ARGS"`, "sh", envFile).Output()
		if err != nil {
			t.Fatalf("sh sourcing %s: %v\n%s", envFile, err, stderrOf(err))
		}
		if got := strings.Join(strings.Fields(string(out)), " "); got != strings.Join(strings.Fields(env["ARGS"]), " ") {
			t.Errorf("%s: sh reads ARGS as\n%q\nthis test as\n%q", envFile, got, env["ARGS"])
		}
	}
}

func TestParseEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env")
	content := "# comment\n\nA=plain value\nB=\"quoted \\\n  continued\" \nC=x\\\ny\n; other comment\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got := parseEnvFile(t, path)
	want := map[string]string{"A": "plain value", "B": "quoted   continued", "C": "xy"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseEnvFile = %q, want %q", got, want)
	}
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify when it is installed,
// on a copy of the unit whose ExecStart points at the freshly built binary.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyPath := filepath.Join(dir, filepath.Base(unitFile))
	patched := strings.ReplaceAll(string(data), "/usr/local/bin/"+binaryName, binaryPath)
	if err := os.WriteFile(copyPath, []byte(patched), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", copyPath).CombinedOutput()
	var problems []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, filepath.Base(unitFile)) {
			problems = append(problems, line)
		}
	}
	if len(problems) > 0 {
		t.Errorf("systemd-analyze verify %s:\n%s", unitFile, strings.Join(problems, "\n"))
	}
	if err != nil && len(problems) == 0 {
		t.Skipf("systemd-analyze verify failed for reasons unrelated to the unit (%v): %s", err, firstLine(string(out)))
	}
	if len(out) > 0 {
		t.Logf("systemd-analyze verify output:\n%s", out)
	}
}
