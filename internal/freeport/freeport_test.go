package freeport

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

func TestTakeNeverRepeatsAndStaysBelowTheEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 20; i++ {
		ports, err := Take(5)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
			if p < lowest || p >= ephemeralStart() {
				t.Fatalf("port %d outside [%d, %d)", p, lowest, ephemeralStart())
			}
		}
	}
	if len(seen) != 100 {
		t.Fatalf("got %d ports, want 100", len(seen))
	}
}

func TestTakeSkipsABoundPort(t *testing.T) {
	ports, err := Take(1)
	if err != nil {
		t.Fatal(err)
	}
	// Bind the next port in line: Take must step over it.
	mu.Lock()
	busy := next
	mu.Unlock()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(busy)))
	if err != nil {
		t.Skipf("cannot bind %d to make it busy: %v", busy, err)
	}
	defer l.Close()
	got, err := Take(1)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] == busy || got[0] == ports[0] {
		t.Fatalf("Take returned %d; %d is bound and %d was handed out", got[0], busy, ports[0])
	}
}

// TestClaimsHoldAcrossProcesses runs this test binary again as a second
// process: it must not be given a port this process holds.
func TestClaimsHoldAcrossProcesses(t *testing.T) {
	if p := getenvPort(); p != "" {
		mu.Lock()
		defer mu.Unlock()
		want, _ := strconv.Atoi(p)
		if claim(want) {
			t.Fatalf("claimed port %d held by the parent process", want)
		}
		return
	}
	ports, err := Take(1)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testBinary(t), "-test.run", "^TestClaimsHoldAcrossProcesses$")
	cmd.Env = append(cmd.Environ(), portEnv+"="+strconv.Itoa(ports[0]))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second process: %v\n%s", err, out)
	}
}

const portEnv = "FREEPORT_TEST_HELD_PORT"

func getenvPort() string { return os.Getenv(portEnv) }

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
