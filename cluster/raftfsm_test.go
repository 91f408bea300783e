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
		o.during = debug.SetGCPercent(100)
		debug.SetGCPercent(o.during)
	}
	return o.r.Read(p)
}

func (o *gcObserver) Close() error { return nil }

// TestRestoreRaisesTheCollectorsTargetWhileItRuns restores a snapshot with
// the collector's target below, at and above restoreGCPercent and with the
// collector off: during the restore the target is at least
// restoreGCPercent unless the collector is off, and afterwards it is what
// it was. The restore is logged with its figures.
func TestRestoreRaisesTheCollectorsTargetWhileItRuns(t *testing.T) {
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
	for _, c := range []struct{ before, during int }{
		{50, restoreGCPercent}, {100, restoreGCPercent}, {restoreGCPercent, restoreGCPercent}, {800, 800}, {-1, -1},
	} {
		debug.SetGCPercent(c.before)
		out := &testutil.LockedBuffer{}
		r := newRaftFSM(fsm.New(nil))
		r.logger = slog.New(slog.NewTextHandler(out, nil))
		obs := &gcObserver{r: bytes.NewReader(snap.Bytes())}
		if err := r.Restore(obs); err != nil {
			t.Fatal(err)
		}
		after := debug.SetGCPercent(100)
		if obs.during != c.during || after != c.before {
			t.Errorf("GOGC %d: %d during the restore and %d after it, want %d and %d", c.before, obs.during, after, c.during, c.before)
		}
		if r.state.Len() != 1 || !strings.Contains(out.String(), "restored the state from a snapshot") || !strings.Contains(out.String(), "groups=1 ") {
			t.Errorf("GOGC %d: %d groups restored, logged %q", c.before, r.state.Len(), out.String())
		}
	}
}
