package test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testcerts"
)

// secureFiles is a directory with everything a secure cluster needs: the
// certificates (and a rogue CA's), gossip keys, the cluster TLS config, a
// web config with TLS and basic auth, and the healthcheck's client config.
// File names inside the YAML files are relative, so the directory can be
// mounted anywhere (a container's /certs).
type secureFiles struct {
	dir                             string
	certs                           *testcerts.Set
	gossipKey, otherGossipKey       string
	clusterTLS, rogueTLS, webConfig string
	user, password                  string
	client                          *http.Client // trusts the test CA
}

func writeSecureFiles(t *testing.T, dir string, perm os.FileMode) *secureFiles {
	t.Helper()
	certs, err := testcerts.WriteSet(dir, perm)
	if err != nil {
		t.Fatal(err)
	}
	sf := &secureFiles{dir: dir, certs: certs, user: "pusher"}
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	sf.password = base64.RawURLEncoding.EncodeToString(pw)
	hash, err := bcrypt.GenerateFromPassword([]byte(sf.password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	key := func() string {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return base64.StdEncoding.EncodeToString(k)
	}
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, perm); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tlsYAML := func(ca, cert, key string) string {
		return fmt.Sprintf("tls_server_config:\n  cert_file: %[2]s\n  key_file: %[3]s\n  client_ca_file: %[1]s\n"+
			"tls_client_config:\n  cert_file: %[2]s\n  key_file: %[3]s\n  ca_file: %[1]s\n", ca, cert, key)
	}
	sf.gossipKey = write("gossip.key", "# the first key encrypts\n"+key()+"\n")
	sf.otherGossipKey = write("other-gossip.key", key()+"\n")
	sf.clusterTLS = write("cluster-tls.yml", tlsYAML("ca.crt", "node.crt", "node.key"))
	sf.rogueTLS = write("rogue-tls.yml", tlsYAML("rogue-ca.crt", "rogue.crt", "rogue.key"))
	sf.webConfig = write("web-config.yml", fmt.Sprintf("tls_server_config:\n  cert_file: node.crt\n  key_file: node.key\nbasic_auth_users:\n  %s: %s\n", sf.user, hash))
	write("healthcheck.yml", fmt.Sprintf("basic_auth:\n  username: %s\n  password: %s\ntls_config:\n  ca_file: ca.crt\n", sf.user, sf.password))

	pool := x509.NewCertPool()
	ca, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	sf.client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return sf
}

// do sends a request, with the basic-auth credentials when auth is set.
func (sf *secureFiles) do(method, url, body string, auth bool) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if auth {
		req.SetBasicAuth(sf.user, sf.password)
	}
	resp, err := sf.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// startSecure starts m with the secure flags (and extra ones) without
// waiting for it to be ready.
func startSecure(t *testing.T, m *member, expect int, extra []string, peers ...*member) {
	t.Helper()
	args := []string{
		"--web.listen-address=" + m.web, "--storage.path=" + m.dir,
		"--raft.listen-address=" + m.raftAddr, "--cluster.listen-address=" + m.gossip,
		"--cluster.node-name=" + m.name, "--cluster.bootstrap-expect=" + strconv.Itoa(expect),
	}
	if !strings.Contains(strings.Join(extra, " "), "--cluster.write-timeout=") {
		args = append(args, "--cluster.write-timeout=5s")
	}
	for _, p := range peers {
		args = append(args, "--cluster.peer="+p.gossip)
	}
	m.launch(append(args, extra...))
}

func (sf *secureFiles) flags(clusterTLS, gossipKey string) []string {
	return []string{"--web.config.file=" + sf.webConfig, "--cluster.tls-config-file=" + clusterTLS, "--cluster.gossip-key-file=" + gossipKey}
}

func httpsURL(m *member) string { return "https://" + m.web }

// applyFrame is what a stranger would send on the raft port after 'C': a
// length-prefixed, well-formed forwarded write.
func applyFrame(t *testing.T, job string) []byte {
	t.Helper()
	data, err := (&fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": job, "instance": ""}, TimeUnixNano: 1e9}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	payload := binary.AppendUvarint([]byte{1}, 2000)
	payload = append(payload, data...)
	return append(binary.AppendUvarint(nil, uint64(len(payload))), payload...)
}

// TestSecureClusterOfProcesses runs three processes with HTTPS and basic
// auth on the API, an encrypted gossip and mutual TLS on the raft port, and
// checks that strangers get nowhere: no credentials (401), a wrong gossip
// key, certificates of another CA, plain TCP on the raft port.
func TestSecureClusterOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	sf := writeSecureFiles(t, t.TempDir(), 0o600)
	nodes := []*member{newMember(t, "node1"), newMember(t, "node2"), newMember(t, "node3")}
	for _, m := range nodes {
		startSecure(t, m, 3, sf.flags(sf.clusterTLS, sf.gossipKey), nodes...)
	}
	var leader string
	took := eventually(t, "three secure members ready with one leader", 30*time.Second, func() bool {
		leader = ""
		for _, m := range nodes {
			code, body, err := sf.do("GET", httpsURL(m)+"/api/v1/cluster", "", true)
			if err != nil || code != 200 {
				return false
			}
			if code, _, err := sf.do("GET", httpsURL(m)+"/-/ready", "", true); err != nil || code != 200 {
				return false
			}
			i := strings.Index(body, `"leader":"`)
			if i < 0 {
				return false
			}
			l, _, _ := strings.Cut(body[i+len(`"leader":"`):], `"`)
			if l == "" || (leader != "" && l != leader) {
				return false
			}
			leader = l
		}
		return true
	})
	t.Logf("secure cluster ready after %v, leader %s", took.Round(time.Millisecond), leader)

	// Without credentials, or with wrong ones: 401 on every endpoint.
	for _, m := range nodes {
		for _, r := range []struct{ method, path string }{{"GET", "/metrics"}, {"PUT", "/metrics/job/anon"}, {"GET", "/api/v1/metrics"}, {"GET", "/-/ready"}} {
			if code, _, err := sf.do(r.method, httpsURL(m)+r.path, "anon 1\n", false); err != nil || code != 401 {
				t.Fatalf("%s %s on %s without credentials: %d %v", r.method, r.path, m.name, code, err)
			}
		}
		req, _ := http.NewRequest("PUT", httpsURL(m)+"/metrics/job/anon", strings.NewReader("anon 1\n"))
		req.SetBasicAuth(sf.user, "wrong")
		if resp, err := sf.client.Do(req); err != nil || resp.StatusCode != 401 {
			t.Fatalf("push with a wrong password on %s: %v %v", m.name, resp, err)
		} else {
			resp.Body.Close()
		}
	}

	// Authenticated pushes on every node, forwarded to the leader over
	// mutual TLS; read-your-writes; identical state everywhere.
	for i, m := range nodes {
		code, body, err := sf.do("PUT", httpsURL(m)+"/metrics/job/secure/instance/"+m.name, fmt.Sprintf("# TYPE secure_push gauge\nsecure_push %d\n", i+1), true)
		if err != nil || code != 200 {
			t.Fatalf("authenticated push via %s: %d %v %s", m.name, code, err, body)
		}
		_, got, _ := sf.do("GET", httpsURL(m)+"/metrics", "", true)
		if !strings.Contains(got, fmt.Sprintf(`secure_push{instance=%q,job="secure"} %d`, m.name, i+1)) {
			t.Fatalf("%s does not show its own write", m.name)
		}
	}
	sameSecure := func() string {
		var want string
		eventually(t, "identical /api/v1/metrics on the secure members", 15*time.Second, func() bool {
			_, want, _ = sf.do("GET", httpsURL(nodes[0])+"/api/v1/metrics", "", true)
			for _, m := range nodes[1:] {
				if _, got, _ := sf.do("GET", httpsURL(m)+"/api/v1/metrics", "", true); got != want {
					return false
				}
			}
			return strings.Contains(want, `"secure"`)
		})
		return want
	}
	before := sameSecure()

	// A node with another gossip key: it never joins, and says why.
	wrongKey := newMember(t, "wrong-key")
	startSecure(t, wrongKey, 1, sf.flags(sf.clusterTLS, sf.otherGossipKey), nodes...)
	// A node with the right key but certificates of another CA: a gossip
	// member, never a raft member; its writes fail.
	rogue := newMember(t, "rogue-ca")
	startSecure(t, rogue, 1, append(sf.flags(sf.rogueTLS, sf.gossipKey), "--cluster.write-timeout=1s"), nodes...)

	eventually(t, "the wrong-key node logs why it cannot join", 15*time.Second, func() bool {
		return strings.Contains(wrongKey.out.String(), "check --cluster.gossip-key-file")
	})
	eventually(t, "the rogue node's raft port refuses the leader", 15*time.Second, func() bool {
		return strings.Contains(rogue.out.String(), "TLS handshake failed")
	})
	if code, body, err := sf.do("PUT", httpsURL(rogue)+"/metrics/job/rogue", "rogue 1\n", true); err != nil || code != 503 {
		t.Fatalf("push through the rogue node: %d %v %s, want 503", code, err, body)
	}
	if code, _, _ := sf.do("GET", httpsURL(rogue)+"/-/ready", "", true); code == 200 {
		t.Fatal("the rogue node is ready")
	}

	// Directly on the leader's raft port: plain TCP with a well-formed
	// forwarded write, then TLS with the rogue certificate.
	leaderM := byName(nodes, leader)
	conn, err := net.DialTimeout("tcp", leaderM.raftAddr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write(append([]byte{'C'}, applyFrame(t, "plain-tcp")...))
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if len(reply) > 0 && reply[0] != 21 { // at most a TLS alert record
		t.Fatalf("the raft port answered a plain-TCP command: %q", reply)
	}
	rogueCert, err := tls.LoadX509KeyPair(sf.certs.RogueCert, sf.certs.RogueKey)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", leaderM.raftAddr,
		&tls.Config{
			// Always present the rogue certificate (with Certificates, Go
			// would send none that the server's CA list does not match).
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &rogueCert, nil },
			RootCAs:              sf.client.Transport.(*http.Transport).TLSClientConfig.RootCAs, MinVersion: tls.VersionTLS12})
	if err == nil {
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = tc.Write(append([]byte{'C'}, applyFrame(t, "rogue-cert")...))
		b := make([]byte, 1)
		_, err = tc.Read(b)
		tc.Close()
		if err == nil {
			t.Fatalf("the raft port accepted a certificate of another CA (first byte %q)", b)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Fatalf("rogue certificate: want refusal for an unknown CA, got %v", err)
	}
	t.Logf("rogue certificate refused: %v", err)
	eventually(t, "the leader logs the refusals", 5*time.Second, func() bool {
		return strings.Count(leaderM.out.String(), "TLS handshake failed") >= 2
	})

	// The cluster is unchanged: three voters, no stranger, same state.
	time.Sleep(time.Second)
	_, view, _ := sf.do("GET", httpsURL(nodes[0])+"/api/v1/cluster", "", true)
	if strings.Contains(view, "wrong-key") {
		t.Fatalf("the wrong-key node became a member: %s", view)
	}
	if strings.Count(view, `"suffrage":"voter"`) != 3 {
		t.Fatalf("want exactly three voters: %s", view)
	}
	if after := sameSecure(); after != before {
		t.Fatalf("state changed by the refused attempts:\n%s\nvs\n%s", after, before)
	}
}

// TestGenTestCertsScript checks that what `make certs` creates starts a
// secure node and that the healthcheck sub-command gets through its HTTPS
// and basic auth with the generated healthcheck.yml. Skipped without openssl.
func TestGenTestCertsScript(t *testing.T) {
	if testing.Short() {
		t.Skip("runs openssl and a process")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	gen := exec.Command("bash", "scripts/gen-test-certs.sh", dir)
	gen.Dir = ".."
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gen-test-certs.sh: %v\n%s", err, out)
	}
	pw, err := os.ReadFile(filepath.Join(dir, "web-password"))
	if err != nil {
		t.Fatal(err)
	}
	sf := writeSecureFiles(t, t.TempDir(), 0o600) // only for its HTTPS client
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	sf.client.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
	sf.user, sf.password = "pusher", strings.TrimSpace(string(pw))

	m := newMember(t, "node1")
	startSecure(t, m, 1, []string{
		"--web.config.file=" + filepath.Join(dir, "web-config.yml"),
		"--cluster.tls-config-file=" + filepath.Join(dir, "cluster-tls.yml"),
		"--cluster.gossip-key-file=" + filepath.Join(dir, "gossip.key"),
	})
	eventually(t, "the node with the generated credentials ready", 15*time.Second, func() bool {
		code, _, err := sf.do("GET", httpsURL(m)+"/-/ready", "", true)
		return err == nil && code == 200
	})
	if code, body, err := sf.do("PUT", httpsURL(m)+"/metrics/job/certs", "certs_ok 1\n", true); err != nil || code != 200 {
		t.Fatalf("push: %d %v %s", code, err, body)
	}
	hc := func(extra ...string) (string, error) {
		out, err := exec.Command(ourBinary, append([]string{"healthcheck", "--url=" + httpsURL(m) + "/-/ready"}, extra...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := hc("--http.config.file=" + filepath.Join(dir, "healthcheck.yml")); err != nil || !strings.Contains(out, "answered 200") {
		t.Fatalf("healthcheck with the generated client config: %v %s", err, out)
	}
	if out, err := hc(); err == nil {
		t.Fatalf("healthcheck without credentials must fail: %s", out)
	}
}
