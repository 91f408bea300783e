package cluster

import (
	"bytes"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// gcObserver reads a snapshot and records the collector's target at its
// first read, while the restore runs.
type gcObserver struct {
	r      io.Reader
	during int
	read   bool
}

func (o *gcObserver) Read(p []byte) (int, error) {
	if !o.read {
		o.read = true
		o.during = gcPercent()
	}
	return o.r.Read(p)
}

func (o *gcObserver) Close() error { return nil }

// TestRestoreAtStartRaisesTheCollectorsTarget restores a snapshot with the
// collector's target below, at and above restoreGCPercent and with the
// collector off, as a starting node and as a serving one: only a starting
// node's restore raises the target, never lowers it, and sets it back
// afterwards. The restore is logged with its figures.
func TestRestoreAtStartRaisesTheCollectorsTarget(t *testing.T) {
	src := fsm.New(nil)
	push, err := (&fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "j"}, TimeUnixNano: 1}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if r := src.Apply(1, push); r.Err != nil {
		t.Fatal(r.Err)
	}
	var snap bytes.Buffer
	if _, err := src.Snapshot().WriteTo(&snap); err != nil {
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, c := range []struct {
		before   int
		starting bool
		during   int
	}{
		{50, true, restoreGCPercent}, {100, true, restoreGCPercent}, {restoreGCPercent, true, restoreGCPercent},
		{800, true, 800}, {-1, true, -1}, {100, false, 100},
	} {
		debug.SetGCPercent(c.before)
		out := &testutil.LockedBuffer{}
		r := newRaftFSM(fsm.New(nil))
		r.logger = slog.New(slog.NewTextHandler(out, nil))
		r.starting.Store(c.starting)
		obs := &gcObserver{r: bytes.NewReader(snap.Bytes())}
		if err := r.Restore(obs); err != nil {
			t.Fatal(err)
		}
		if after := gcPercent(); obs.during != c.during || after != c.before {
			t.Errorf("GOGC %d, starting %v: %d during the restore and %d after it, want %d and %d", c.before, c.starting, obs.during, after, c.during, c.before)
		}
		if r.state.Len() != 1 || !strings.Contains(out.String(), "restored the state from a snapshot") || !strings.Contains(out.String(), "groups=1 ") {
			t.Errorf("GOGC %d: %d groups restored, logged %q", c.before, r.state.Len(), out.String())
		}
	}
}

// TestOverlappingRestoresSetTheTargetBackOnce raises the target for two
// restores that overlap (two nodes of one process starting at once): it
// stays raised until the last one ends, then is what it was before the
// first, and ending one twice changes nothing.
func TestOverlappingRestoresSetTheTargetBackOnce(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(70))
	endA := raiseGCForRestore()
	endB := raiseGCForRestore()
	endA()
	endA()
	if got := gcPercent(); got != restoreGCPercent {
		t.Fatalf("target %d while a restore still runs, want %d", got, restoreGCPercent)
	}
	endB()
	if got := gcPercent(); got != 70 {
		t.Fatalf("target %d after both restores, want the 70 from before", got)
	}
}
