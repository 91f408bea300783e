// Package testcerts creates throw-away certificate authorities and
// certificates for tests, with crypto/x509 only (no openssl needed).
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority that can issue certificates.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate, PEM-encoded.
	PEM []byte
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
}

// NewCA creates a self-signed CA named cn.
func NewCA(cn string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue creates a certificate for cn, valid as a TLS server and as a TLS
// client, with the given DNS and IP subject alternative names. It returns
// the certificate and its private key, PEM-encoded.
func (ca *CA) Issue(cn string, dnsNames []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}

// Set is the files WriteSet wrote, as absolute paths.
type Set struct {
	Dir string
	// CA, Cert and Key: the cluster's CA and a certificate it signed for
	// every node (server and client use; names in DNSNames and IPs).
	CA, Cert, Key string
	// RogueCA, RogueCert and RogueKey: another CA and a certificate it
	// signed, with the same names: what a stranger could make.
	RogueCA, RogueCert, RogueKey string
}

// DNSNames and IPs are the subject alternative names of the certificates
// WriteSet issues: loopback, and the names and addresses docker-compose.yml
// gives its three nodes.
var (
	DNSNames = []string{"localhost", "node1", "node2", "node3", "pushgateway"}
	IPs      = []net.IP{
		net.ParseIP("127.0.0.1"), net.ParseIP("::1"),
		net.ParseIP("10.213.77.11"), net.ParseIP("10.213.77.12"), net.ParseIP("10.213.77.13"),
	}
)

// WriteSet creates the cluster's CA and node certificate and a rogue CA and
// certificate in dir, with file mode perm (e.g. 0o644 when a container user
// must read them).
func WriteSet(dir string, perm os.FileMode) (*Set, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Set{
		Dir: abs,
		CA:  filepath.Join(abs, "ca.crt"), Cert: filepath.Join(abs, "node.crt"), Key: filepath.Join(abs, "node.key"),
		RogueCA: filepath.Join(abs, "rogue-ca.crt"), RogueCert: filepath.Join(abs, "rogue.crt"), RogueKey: filepath.Join(abs, "rogue.key"),
	}
	for _, x := range []struct {
		caName, caFile, certFile, keyFile string
	}{
		{"pushgateway-cluster test CA", s.CA, s.Cert, s.Key},
		{"rogue CA", s.RogueCA, s.RogueCert, s.RogueKey},
	} {
		ca, err := NewCA(x.caName)
		if err != nil {
			return nil, err
		}
		cert, key, err := ca.Issue("pushgateway-cluster node", DNSNames, IPs)
		if err != nil {
			return nil, err
		}
		for file, data := range map[string][]byte{x.caFile: ca.PEM, x.certFile: cert, x.keyFile: key} {
			if err := os.WriteFile(file, data, perm); err != nil {
				return nil, fmt.Errorf("write %s: %w", file, err)
			}
			if err := os.Chmod(file, perm); err != nil { // WriteFile's mode is subject to the umask
				return nil, err
			}
		}
	}
	return s, nil
}
