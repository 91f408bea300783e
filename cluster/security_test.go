package cluster

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testcerts"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

func bufferLogger(t *testing.T, name string) (*slog.Logger, *testutil.LockedBuffer) {
	buf := &testutil.LockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", name, buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// securityFixture holds the certificates, TLS configurations (loaded
// through the YAML file, as --cluster.tls-config-file does) and gossip keys
// of a secure test cluster.
type securityFixture struct {
	certs                    *testcerts.Set
	serverTLS, clientTLS     *tls.Config
	rogueServer, rogueClient *tls.Config
	key, otherKey            []byte
}

func newSecurityFixture(t *testing.T) *securityFixture {
	t.Helper()
	dir := t.TempDir()
	certs, err := testcerts.WriteSet(dir, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f := &securityFixture{certs: certs, key: bytes.Repeat([]byte{1}, 32), otherKey: bytes.Repeat([]byte{2}, 32)}
	// Relative file names resolve against the YAML file's directory.
	write := func(name, ca, cert, key string) string {
		path := filepath.Join(dir, name)
		yml := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n  client_ca_file: %s\ntls_client_config:\n  cert_file: %s\n  key_file: %s\n  ca_file: %s\n",
			filepath.Base(cert), filepath.Base(key), filepath.Base(ca), filepath.Base(cert), filepath.Base(key), filepath.Base(ca))
		if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	if f.serverTLS, f.clientTLS, err = LoadTLSConfigFile(write("cluster-tls.yml", certs.CA, certs.Cert, certs.Key)); err != nil {
		t.Fatal(err)
	}
	if f.rogueServer, f.rogueClient, err = LoadTLSConfigFile(write("rogue-tls.yml", certs.RogueCA, certs.RogueCert, certs.RogueKey)); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *securityFixture) config(t *testing.T, name string, expect int, peers []string) (Config, *testutil.LockedBuffer) {
	cfg := nodeConfig(t.TempDir(), name, expect, peers)
	cfg.GossipKeys = [][]byte{f.key}
	cfg.TLSServer, cfg.TLSClient = f.serverTLS, f.clientTLS
	var buf *testutil.LockedBuffer
	cfg.Logger, buf = bufferLogger(t, name)
	return cfg, buf
}

// startSecureCluster starts three nodes with mutual TLS and a gossip key.
func startSecureCluster(t *testing.T, f *securityFixture) (*testCluster, []*testutil.LockedBuffer) {
	t.Helper()
	c := &testCluster{t: t}
	var logs []*testutil.LockedBuffer
	for i := 0; i < 3; i++ {
		var peers []string
		if i > 0 {
			peers = []string{c.nodes[0].GossipAddress()}
		}
		cfg, buf := f.config(t, fmt.Sprintf("sec-%d", i), 3, peers)
		c.nodes = append(c.nodes, c.start(cfg))
		logs = append(logs, buf)
	}
	c.waitReadyAll()
	return c, logs
}

func TestSecureClusterFormsAndForwardsWrites(t *testing.T) {
	f := newSecurityFixture(t)
	c, _ := startSecureCluster(t, f)
	for i, n := range c.nodes {
		if res := push(t, n.Node, int64(i+1)*1e9, fmt.Sprintf("secure_write %d\n", i), map[string]string{"job": "sec", "via": n.name}); res.Err != nil {
			t.Fatalf("push via %s: %v", n.name, res.Err)
		}
	}
	got := c.assertIdentical()
	for _, n := range c.nodes {
		if !strings.Contains(got, fmt.Sprintf(`via=%q`, n.name)) {
			t.Fatalf("write via %s missing:\n%s", n.name, got)
		}
	}
	if !c.nodes[0].gossip.encrypted {
		t.Fatal("gossip encryption is off")
	}
}

// TestWrongOrMissingGossipKeyCannotJoin starts a node with another key and
// one with none against a cluster with a key: neither ever becomes a
// member, and both say why in their logs.
func TestWrongOrMissingGossipKeyCannotJoin(t *testing.T) {
	f := newSecurityFixture(t)
	c, logs := startSecureCluster(t, f)
	before := exposition(t, c.nodes[0].state)

	wrongCfg, wrongLog := f.config(t, "wrong-key", 1, []string{c.nodes[0].GossipAddress(), c.nodes[1].GossipAddress()})
	wrongCfg.GossipKeys = [][]byte{f.otherKey}
	wrong := c.start(wrongCfg)
	noneCfg, noneLog := f.config(t, "no-key", 1, []string{c.nodes[2].GossipAddress()})
	noneCfg.GossipKeys = nil
	none := c.start(noneCfg)

	waitFor(t, "both outsiders log why they cannot join", 10*time.Second, func() bool {
		return strings.Contains(wrongLog.String(), "check --cluster.gossip-key-file") && strings.Contains(noneLog.String(), "check --cluster.gossip-key-file")
	})
	if s := wrongLog.String(); !strings.Contains(s, "no installed keys could decrypt") {
		t.Errorf("the node with the wrong key does not name the decryption failure:\n%s", s)
	}
	if s := noneLog.String(); !strings.Contains(s, "encryption is not configured") {
		t.Errorf("the node without a key does not name the encryption mismatch:\n%s", s)
	}
	if s := logs[0].String(); !strings.Contains(s, "check --cluster.gossip-key-file") {
		t.Errorf("the cluster's node does not log the refused join with a hint:\n%s", s)
	}
	// Give gossip time to spread anything that might have leaked.
	time.Sleep(1500 * time.Millisecond)
	for _, out := range []*testNode{wrong, none} {
		if m := out.gossip.ml.NumMembers(); m != 1 {
			t.Errorf("%s sees %d gossip members, want only itself", out.name, m)
		}
		if out.Ready() == nil || out.hasState() {
			t.Errorf("%s joined raft", out.name)
		}
	}
	for _, n := range c.nodes {
		for name := range n.gossip.snapshot() {
			if name == "wrong-key" || name == "no-key" {
				t.Errorf("%s lists %s as a member", n.name, name)
			}
		}
		if cfg := n.raft.GetConfiguration(); cfg.Error() != nil || len(cfg.Configuration().Servers) != 3 {
			t.Errorf("%s: raft configuration changed: %v", n.name, cfg.Configuration().Servers)
		}
	}
	if after := exposition(t, c.nodes[0].state); after != before {
		t.Fatalf("state changed:\n%s", after)
	}
}

// applyFrame is a well-formed forwarded write: what a stranger would send.
func applyFrame(t *testing.T, job string) []byte {
	t.Helper()
	cmd := &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": job, "instance": ""}, TimeUnixNano: 1e9}
	data, err := cmd.Encode()
	if err != nil {
		t.Fatal(err)
	}
	req := append([]byte{methodApply}, appendUvarint(nil, 2000)...)
	return append(req, data...)
}

func TestRaftPortRefusesPeersWithoutTheClusterCertificate(t *testing.T) {
	f := newSecurityFixture(t)
	c, logs := startSecureCluster(t, f)
	leaderName := c.waitReadyAll()
	leader := c.byName(leaderName)
	leaderLog := logs[0]
	for i, n := range c.nodes {
		if n == leader {
			leaderLog = logs[i]
		}
	}
	addr := leader.RaftAddress()

	// Control: a node's own certificate may send a command directly.
	good := newRPCClient(&dialer{tls: f.clientTLS})
	defer good.close()
	reply, err := good.call(addr, time.Now().Add(3*time.Second), applyFrame(t, "control"))
	if err != nil {
		t.Fatalf("command with the cluster's certificate: %v", err)
	}
	if r, err := decodeApplyReply(reply); err != nil || r.code != codeOK || r.message != "" {
		t.Fatalf("command with the cluster's certificate: %+v %v", r, err)
	}
	before := c.assertIdentical()
	if !strings.Contains(before, `job="control"`) {
		t.Fatalf("control write missing:\n%s", before)
	}

	t.Run("certificate from another CA", func(t *testing.T) {
		rogue := newRPCClient(&dialer{tls: f.rogueClient})
		defer rogue.close()
		_, err := rogue.call(addr, time.Now().Add(3*time.Second), applyFrame(t, "rogue-ca"))
		if err == nil || !errors.Is(err, errNotSent) {
			t.Fatalf("want a refused connection (not sent), got %v", err)
		}
		// The rogue trusts its own CA only, so the leader's certificate
		// fails too; trusting the real CA, its own certificate is still
		// refused by the leader.
		mixed := f.rogueClient.Clone()
		pool := x509.NewCertPool()
		ca, _ := os.ReadFile(f.certs.CA)
		pool.AppendCertsFromPEM(ca)
		mixed.RootCAs = pool
		_, err = (&dialer{tls: mixed}).dial(addr, protoCommand, 3*time.Second)
		if err == nil || !strings.Contains(err.Error(), "refused by the peer") {
			t.Fatalf("rogue client certificate: want refusal, got %v", err)
		}
		t.Logf("refused: %v", err)
	})

	t.Run("no client certificate", func(t *testing.T) {
		pool := x509.NewCertPool()
		ca, _ := os.ReadFile(f.certs.CA)
		pool.AppendCertsFromPEM(ca)
		conn, err := (&dialer{tls: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}).dial(addr, protoCommand, 3*time.Second)
		if err == nil {
			conn.Close()
			t.Fatal("a connection without a client certificate was accepted")
		}
		t.Logf("refused: %v", err)
	})

	t.Run("plain TCP with a valid-looking command", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		local := conn.LocalAddr().String()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		w := bufio.NewWriter(conn)
		_ = w.WriteByte(protoCommand)
		if err := writeFrame(w, applyFrame(t, "plain-tcp")); err != nil {
			t.Logf("write: %v", err)
		}
		b, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the leader kept the connection open")
		}
		if len(b) > 0 && b[0] != 21 { // a TLS alert record is all it may send back
			t.Fatalf("the leader answered a plain-TCP command: %q", b)
		}
		waitFor(t, "the refusal logged with the remote address", 5*time.Second, func() bool {
			for _, line := range strings.Split(leaderLog.String(), "\n") {
				if strings.Contains(line, "TLS handshake failed") && strings.Contains(line, local) {
					return true
				}
			}
			return false
		})
	})

	t.Run("a whole node with certificates from another CA", func(t *testing.T) {
		// Right gossip key, wrong CA: it becomes a gossip member, but no
		// raft connection is possible either way, so it never receives
		// the log, never learns the leader and cannot write.
		cfg, rogueLog := f.config(t, "rogue-node", 1, []string{c.nodes[0].GossipAddress()})
		cfg.TLSServer, cfg.TLSClient = f.rogueServer, f.rogueClient
		cfg.WriteTimeout = time.Second
		rogue := c.start(cfg)
		waitFor(t, "the leader tries to replicate to the rogue node and is refused", 10*time.Second, func() bool {
			return strings.Contains(leaderLog.String(), "rogue-node") && strings.Contains(rogueLog.String(), "TLS handshake failed")
		})
		time.Sleep(time.Second)
		if rogue.Ready() == nil || rogue.hasState() {
			t.Fatal("rogue node joined raft")
		}
		if strings.Contains(exposition(t, rogue.state), "control") {
			t.Fatal("rogue node received the log")
		}
		for _, s := range leader.raft.GetConfiguration().Configuration().Servers {
			if s.ID == "rogue-node" && s.Suffrage == raft.Voter {
				t.Fatal("rogue node was promoted to voter")
			}
		}
		if _, err := rogue.Submit(t.Context(), &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "rogue-node", "instance": ""}, TimeUnixNano: 1e9}); err == nil {
			t.Fatal("rogue node's write succeeded")
		}
	})

	if after := c.assertIdentical(); after != before {
		t.Fatalf("state changed by the refused attempts:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if n := strings.Count(leaderLog.String(), "refused connection on the raft port: TLS handshake failed"); n < 3 {
		t.Fatalf("%d refusals logged by the leader, want at least 3", n)
	}
}

func TestParseGossipKeys(t *testing.T) {
	k16 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16))
	k32 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	keys, err := ParseGossipKeys([]byte("# primary first\n" + k32 + "\n\n   " + k16 + "  \n# old key\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || len(keys[0]) != 32 || len(keys[1]) != 16 {
		t.Fatalf("keys: %v", keys)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "no key"},
		{"# nothing\n\n", "no key"},
		{k32 + "\nnot base64!\n", "line 2: not base64"},
		{base64.StdEncoding.EncodeToString([]byte("short")), "line 1: the key decodes to 5 bytes; it must be 16, 24 or 32 bytes"},
	} {
		if _, err := ParseGossipKeys([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want error %q, got %v", tc.in, tc.want, err)
		}
	}
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(k16+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if keys, err := LoadGossipKeyFile(path); err != nil || len(keys) != 1 {
		t.Fatalf("%v %v", keys, err)
	}
	if _, err := LoadGossipKeyFile(path + ".missing"); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestLoadTLSConfigFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := testcerts.WriteSet(dir, 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(yml string) (*tls.Config, *tls.Config, error) {
		path := filepath.Join(dir, "c.yml")
		if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		return LoadTLSConfigFile(path)
	}
	const server = "tls_server_config:\n  cert_file: node.crt\n  key_file: node.key\n  client_ca_file: ca.crt\n"
	const client = "tls_client_config:\n  cert_file: node.crt\n  key_file: node.key\n  ca_file: ca.crt\n"
	s, c, err := load(server + client)
	if err != nil {
		t.Fatal(err)
	}
	if s.ClientAuth != tls.RequireAndVerifyClientCert || s.ClientCAs == nil || s.MinVersion != tls.VersionTLS12 {
		t.Fatalf("server side: client auth %v, min version %#x", s.ClientAuth, s.MinVersion)
	}
	if c.GetClientCertificate == nil || c.RootCAs == nil || c.MinVersion != tls.VersionTLS12 {
		t.Fatal("client side lacks its certificate or CA")
	}
	for _, tc := range []struct{ yml, want string }{
		{client, "tls_server_config is missing"},
		{server, "tls_client_config is missing"},
		{"tls_server_config:\n  cert_file: node.crt\n  key_file: node.key\n" + client, "client_ca_file is required"},
		{server + "  client_auth_type: VerifyClientCertIfGiven\n" + client, "must be RequireAndVerifyClientCert"},
		{server + "tls_client_config:\n  ca_file: ca.crt\n", "cert_file and key_file are required"},
		{server + client + "unknown_key: 1\n", "not found"},
		{"tls_server_config:\n  cert_file: missing.crt\n  key_file: node.key\n  client_ca_file: ca.crt\n" + client, "missing.crt"},
	} {
		if _, _, err := load(tc.yml); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error containing %q, got %v\n%s", tc.want, err, tc.yml)
		}
	}
	if _, err := Start(Config{DataDir: t.TempDir(), NodeName: "x", RaftListen: "127.0.0.1:0", State: fsm.New(nil), TLSServer: s}); err == nil {
		t.Fatal("a server TLS config without a client one was accepted")
	}
}

func TestIsEncryptionError(t *testing.T) {
	for line, want := range map[string]bool{
		"[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=1.2.3.4:5": true,
		"[ERR] memberlist: Decrypt packet failed: cannot decrypt empty payload from=1.2.3.4:5":            true,
		"failed to join 1.2.3.4:5: remote state is encrypted and encryption is not configured":            true,
		"failed to join 1.2.3.4:5: encryption is configured but remote state is not encrypted":            true,
		"[WARN] memberlist: Binding to public address without encryption!":                                false,
		"[DEBUG] memberlist: Stream connection from=1.2.3.4:5":                                            false,
	} {
		if got := isEncryptionError(line); got != want {
			t.Errorf("%q: %v, want %v", line, got, want)
		}
	}
}

func TestRaftAndMemberlistChatterIsDebug(t *testing.T) {
	var out strings.Builder
	l := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w := &logWriter{l: l, component: "raft"}
	for _, line := range []string{
		"[INFO]  raft: entering leader state: leader=\"Node at 127.0.0.1:9095 [Leader]\"",
		"[INFO]  raft: election won: term=2 tally=1",
		"[DEBUG] raft: lots of detail",
		"[WARN]  raft: heartbeat timeout reached, starting election",
		"[ERROR] raft: failed to appendEntries to: peer=x",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	got := out.String()
	if strings.Contains(got, "entering leader state") || strings.Contains(got, "election won") || strings.Contains(got, "lots of detail") {
		t.Fatalf("raft's INFO chatter at the default level:\n%s", got)
	}
	if !strings.Contains(got, "level=WARN") || !strings.Contains(got, "level=ERROR") {
		t.Fatalf("warnings or errors lost:\n%s", got)
	}
}
