package fsm

import (
	"bytes"
	"testing"
)

// TestOnChangeAfterApplyAndRestore checks that change hooks run after every
// applied command and restore, without the FSM's lock (they may read it).
func TestOnChangeAfterApplyAndRestore(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	var seen []uint64
	a.s.OnChange(func() { seen = append(seen, a.s.AppliedIndex()) })
	a.mustOK(pushCmd(t, OpPut, t1, "m 1\n", "job", "a"))
	a.apply(&Command{Op: OpDelete, Labels: map[string]string{"job": "a"}, TimeUnixNano: t2})
	var snap bytes.Buffer
	if _, err := a.s.Snapshot().WriteTo(&snap); err != nil {
		t.Fatal(err)
	}
	if err := a.s.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || seen[0] != 1 || seen[1] != 2 || seen[2] != 2 {
		t.Fatalf("hook saw applied indexes %v, want [1 2 2]", seen)
	}
}
