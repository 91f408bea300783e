// Package chaos runs a three-node pushgateway-cluster of real processes
// through faults (kill -9, SIGSTOP, graceful and full restarts, network
// partitions in network namespaces) while clients write, then checks the
// recorded history against the nodes' final state: nothing acknowledged is
// lost, every node serves the same bytes, at most one leader per term.
//
// TestChaos runs a short version (about 20 s of workload, three faults);
// CHAOS_DURATION=120s (make chaos) runs every fault alone and combined.
// See the README's "Guarantees" section for what is promised and how the checker proves it.
package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
)

// binary is the pushgateway-cluster binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		// TestChaos skips itself; the checker's own tests need no binary.
		return m.Run()
	}
	if b := os.Getenv("CHAOS_BINARY"); b != "" {
		// A binary built elsewhere (a release, a patched tree).
		binary = b
	} else {
		dir, err := os.MkdirTemp("", "pgc-chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "create temp dir:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		registerEmergency(func() { os.RemoveAll(dir) })
		if binary, err = procs.Build(dir, "./cmd/pushgateway-cluster"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	removeStaleNetworks()

	// Ctrl-C or a SIGTERM to the test binary would skip t.Cleanup: tear
	// the namespaces and node processes down before exiting.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "chaos: %v, cleaning up\n", s)
		runEmergencyCleanups()
		os.Exit(2)
	}()
	return m.Run()
}

// emergency holds teardown functions that must also run when the test
// binary is interrupted. Each is also registered with t.Cleanup and is
// idempotent.
var emergency struct {
	sync.Mutex
	fns map[int]func()
	seq int
}

func registerEmergency(fn func()) (unregister func()) {
	emergency.Lock()
	defer emergency.Unlock()
	if emergency.fns == nil {
		emergency.fns = map[int]func(){}
	}
	emergency.seq++
	id := emergency.seq
	emergency.fns[id] = fn
	return func() {
		emergency.Lock()
		defer emergency.Unlock()
		delete(emergency.fns, id)
	}
}

func runEmergencyCleanups() {
	emergency.Lock()
	fns := make([]func(), 0, len(emergency.fns))
	for _, fn := range emergency.fns {
		fns = append(fns, fn)
	}
	emergency.Unlock()
	for _, fn := range fns {
		fn()
	}
}
