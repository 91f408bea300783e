package cluster

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/common/config"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
)

// gossipKeyHint is added to log lines about gossip encryption failures: they
// almost always mean the nodes do not share a gossip key.
const gossipKeyHint = "the nodes do not share a gossip key (or one side has none): check --cluster.gossip-key-file on every node"

// LoadGossipKeyFile reads the keys of --cluster.gossip-key-file.
func LoadGossipKeyFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gossip key file: %w", err)
	}
	keys, err := ParseGossipKeys(b)
	if err != nil {
		return nil, fmt.Errorf("gossip key file %s: %w", path, err)
	}
	return keys, nil
}

// ParseGossipKeys parses base64 keys, one per line; blank lines and lines
// starting with # are ignored. Every key must decode to 16, 24 or 32 bytes
// (AES-128, -192 or -256). The first key encrypts what this node sends;
// all of them are tried to decrypt what it receives.
func ParseGossipKeys(data []byte) ([][]byte, error) {
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: not base64: %v", line, err)
		}
		if err := memberlist.ValidateKey(key); err != nil {
			return nil, fmt.Errorf("line %d: the key decodes to %d bytes; it must be 16, 24 or 32 bytes (e.g. `openssl rand -base64 32`)", line, len(key))
		}
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no key found (one base64 key per line)")
	}
	return keys, nil
}

// TLSTransportConfig is the content of --cluster.tls-config-file, in the
// style of Alertmanager's --cluster.tls-config: the server side (exporter-
// toolkit's web TLS config) and the client side (the Prometheus ecosystem's
// client TLS config).
type TLSTransportConfig struct {
	TLSServerConfig *web.TLSConfig    `yaml:"tls_server_config"`
	TLSClientConfig *config.TLSConfig `yaml:"tls_client_config"`
}

// LoadTLSConfigFile reads --cluster.tls-config-file and returns the TLS
// configurations of the raft port's listener and of the connections this
// node opens to the others. Relative file names are relative to the file's
// directory. Every connection between nodes is mutual TLS: the server side
// must verify client certificates against client_ca_file (the default
// client_auth_type when a client CA is given), and the client side must
// present a certificate.
func LoadTLSConfigFile(path string) (server, client *tls.Config, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read cluster TLS config: %w", err)
	}
	server, client, err = parseTLSTransportConfig(b, filepath.Dir(path))
	if err != nil {
		return nil, nil, fmt.Errorf("cluster TLS config %s: %w", path, err)
	}
	return server, client, nil
}

func parseTLSTransportConfig(data []byte, dir string) (server, client *tls.Config, err error) {
	var c TLSTransportConfig
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, nil, err
	}
	if c.TLSServerConfig == nil {
		return nil, nil, errors.New("tls_server_config is missing: every node accepts connections from the others")
	}
	if c.TLSClientConfig == nil {
		return nil, nil, errors.New("tls_client_config is missing: every node connects to the others")
	}
	sc, cc := c.TLSServerConfig, c.TLSClientConfig
	sc.SetDirectory(dir)
	cc.SetDirectory(dir)

	if sc.ClientCAs == "" && sc.ClientCAsText == "" {
		return nil, nil, errors.New("tls_server_config.client_ca_file is required: only nodes with a certificate signed by that CA may connect")
	}
	if sc.ClientAuth == "" {
		sc.ClientAuth = "RequireAndVerifyClientCert"
	}
	if sc.ClientAuth != "RequireAndVerifyClientCert" {
		return nil, nil, fmt.Errorf("tls_server_config.client_auth_type is %q; it must be RequireAndVerifyClientCert (or unset): anyone who connects without a verified certificate could inject writes", sc.ClientAuth)
	}
	if sc.MinVersion == 0 {
		sc.MinVersion = tls.VersionTLS12
	}
	if server, err = web.ConfigToTLSConfig(sc); err != nil {
		return nil, nil, fmt.Errorf("tls_server_config: %w", err)
	}

	if cc.CertFile == "" && cc.Cert == "" {
		return nil, nil, errors.New("tls_client_config.cert_file and key_file are required: the other nodes accept only connections with a client certificate")
	}
	if cc.MinVersion == 0 {
		cc.MinVersion = tls.VersionTLS12
	}
	if client, err = config.NewTLSConfig(cc); err != nil {
		return nil, nil, fmt.Errorf("tls_client_config: %w", err)
	}
	return server, client, nil
}

// isEncryptionError reports whether a memberlist error or log line says
// that a message could not be decrypted or that one side does not encrypt:
// the nodes do not share a gossip key.
func isEncryptionError(s string) bool {
	s = strings.ToLower(s)
	for _, sign := range []string{"decrypt", "encryption is not configured", "is not encrypted", "unsupported encryption version"} {
		if strings.Contains(s, sign) {
			return true
		}
	}
	return false
}
