package testutil

import (
	"net"
	"strconv"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/freeport"
)

// FreePort returns a TCP and UDP port on 127.0.0.1 that was free a moment
// ago and that no other caller in any test process is given (see freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	ports, err := freeport.Take(1)
	if err != nil {
		t.Fatalf("pick free port: %v", err)
	}
	return ports[0]
}

// FreeAddr returns "127.0.0.1:<FreePort>".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}
