package fsm

import (
	"fmt"
	"math/rand"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// TestFamiliesWhileApplying reads the exposition while commands are being
// applied (Families builds the metric lists of changed names after it
// released the state machine's lock): every read is the exposition after
// some prefix of the commands, reads never go back, and once the writes
// stop the exposition is the final state's.
func TestFamiliesWhileApplying(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	var cmds [][]byte
	for i := 0; i < 600; i++ {
		labels := map[string]string{"job": "j", "instance": fmt.Sprint(r.Intn(40))}
		c := &Command{Op: OpPut, Labels: labels, TimeUnixNano: int64(i+1) * 1e9}
		switch n := r.Intn(20); {
		case n == 0:
			c.Op = OpDelete
		case n == 1:
			c.Op = OpPost
			fallthrough
		default:
			for _, name := range []string{"a", "b", "c"} {
				if n == 1 && r.Intn(2) == 0 {
					continue
				}
				mf := &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum()}
				mf.Metric = append(mf.Metric, randomGauge(r, n == 2)) // n == 2: labels that may collide, a rejected push
				c.Families = append(c.Families, mf)
			}
		}
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, b)
	}

	// The exposition after each prefix of the commands, from a state
	// machine that applies them one by one.
	ref := newTestFSM()
	after := map[string]int{render(t, ref): 0}
	for i, b := range cmds {
		ref.Apply(uint64(i+1), b)
		if txt := render(t, ref); after[txt] == 0 {
			after[txt] = i + 1
		}
	}
	final := render(t, ref)

	s := newTestFSM()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, b := range cmds {
			s.Apply(uint64(i+1), b)
		}
	}()
	reads, last := 0, 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		txt := renderFamilies(t, s.Families())
		n, ok := after[txt]
		if !ok {
			t.Fatalf("read %d is the exposition of no prefix of the commands:\n%s", reads, txt)
		}
		if n < last {
			t.Fatalf("read %d went back: the state after %d commands, after a read of the state after %d", reads, n, last)
		}
		reads, last = reads+1, n
	}
	if got := render(t, s); got != final {
		t.Fatalf("after the writes: the exposition is not the final state's\n--- got\n%s\n--- want\n%s", got, final)
	}
	if reads < 10 {
		t.Fatalf("only %d reads while writing", reads)
	}
	t.Logf("%d reads while %d commands were applied", reads, len(cmds))
}

// TestFamiliesCachesNothingChangedWhileBuilding applies commands right
// where Families builds the metric lists without the lock: that read shows
// the state it ordered, and the next read shows the commands, for the names
// they changed (whose lists were being built) and for the others.
func TestFamiliesCachesNothingChangedWhileBuilding(t *testing.T) {
	s := &applier{t: t, s: newTestFSM()}
	ref := &applier{t: t, s: newTestFSM()}
	both := func(c *Command) {
		s.mustOK(c)
		ref.mustOK(c)
	}
	for g := 0; g < 5; g++ {
		both(pushCmd(t, OpPut, int64(g+1)*1e9, "a 1\nb 1\n", "job", "j", "instance", fmt.Sprint(g)))
	}
	s.s.Families()
	both(pushCmd(t, OpPut, 10e9, "a 2\nb 2\n", "job", "j", "instance", "1")) // a and b change
	before := render(t, ref.s)
	during := []*Command{
		pushCmd(t, OpPost, 11e9, "a 3\n", "job", "j", "instance", "1"), // a again, being built
		pushCmd(t, OpPut, 12e9, "c 1\n", "job", "j", "instance", "7"),  // a new group and name
		pushCmd(t, OpDelete, 13e9, "", "job", "j", "instance", "3"),    // every name
	}
	s.s.beforeSettle = func() {
		s.s.beforeSettle = nil
		for _, c := range during {
			s.mustOK(c)
		}
	}
	if got := render(t, s.s); got != before {
		t.Fatalf("the read during the commands is not the state it ordered\n--- got\n%s\n--- want\n%s", got, before)
	}
	for _, c := range during {
		ref.mustOK(c)
	}
	if got, want := render(t, s.s), render(t, ref.s); got != want {
		t.Fatalf("the read after the commands misses them\n--- got\n%s\n--- want\n%s", got, want)
	}
}
