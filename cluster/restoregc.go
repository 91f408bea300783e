package cluster

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The garbage collector's target while a node restores its snapshot at
// start (see raftFSM.Restore).
//
// A restore builds the whole state at once: at 100,000 groups the heap
// grows from nothing to 700 MB of objects that all stay, and with the
// default GOGC of 100 the collector marks everything built so far at every
// doubling. While a node that does not serve yet restores, the target is
// raised to restoreGCPercent, never lowered (a higher GOGC or the collector
// switched off stay as they are), and set back when the last restore of the
// process ends. The heap then peaks at about what the restored state holds
// plus the restore's short-lived lists; a GOMEMLIMIT still bounds it.

// restoreGCPercent is the collector's target while a node restores at start.
const restoreGCPercent = 400

// restoreGC counts the restores running with the raised target (nodes of
// one process may restore at once) and keeps the target from before the
// first of them.
var restoreGC struct {
	mu      sync.Mutex
	running int
	raised  bool
	before  int
}

// gcPercent returns the collector's current target (GOGC; negative when the
// collector is off) without changing it.
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100
	}
	// The runtime reports its signed target as an unsigned value: off (-1)
	// reads back as the largest one.
	return int(int64(s[0].Value.Uint64()))
}

// raiseGCForRestore raises the collector's target to restoreGCPercent if it
// is lower and the collector is on, and returns the function that ends the
// raise: the last one to end sets the target back.
func raiseGCForRestore() (end func()) {
	restoreGC.mu.Lock()
	defer restoreGC.mu.Unlock()
	if restoreGC.running == 0 {
		restoreGC.before = gcPercent()
		restoreGC.raised = restoreGC.before >= 0 && restoreGC.before < restoreGCPercent
		if restoreGC.raised {
			debug.SetGCPercent(restoreGCPercent)
		}
	}
	restoreGC.running++
	var once sync.Once
	return func() {
		once.Do(func() {
			restoreGC.mu.Lock()
			defer restoreGC.mu.Unlock()
			if restoreGC.running--; restoreGC.running == 0 && restoreGC.raised {
				debug.SetGCPercent(restoreGC.before)
			}
		})
	}
}
