package fsm

import (
	"testing"
)

// TestStoredMetricsShareLabelSlices: a metric pushed without labels of its
// own is stored with the group's pairs, sorted, in the one slice the
// group's timestamp metrics hold too (no label slots of its own); metrics
// of a push with the same labels, one after the other, share one slice of
// their exact size; others keep their own. Applying the same command
// again (decoded again, as raft does), and a push to another group, leave
// them as they were.
func TestStoredMetricsShareLabelSlices(t *testing.T) {
	s := newTestFSM()
	cmd := pushCmd(t, OpPut, 1, "# TYPE a gauge\na 1\n# TYPE b gauge\nb{x=\"y\"} 2\n# TYPE c gauge\nc{x=\"y\"} 3\n# TYPE d gauge\nd{x=\"z\"} 4\n", "job", "j", "instance", "i")
	// Decoded for each apply, as raft hands it over: equal label pairs
	// are one (interned).
	enc, err := cmd.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for index := uint64(1); index <= 2; index++ {
		decoded, err := DecodeCommand(enc)
		if err != nil {
			t.Fatal(err)
		}
		if res := s.ApplyCommand(index, decoded); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if res := s.ApplyCommand(3, pushCmd(t, OpPut, 2, "# TYPE a gauge\na 3\n", "job", "j", "instance", "other")); res.Err != nil {
		t.Fatal(res.Err)
	}
	g := s.Group(map[string]string{"job": "j", "instance": "i"})
	if g == nil {
		t.Fatal("group not stored")
	}
	labels := func(name string) string {
		f := g.Families.Get(name)
		if f == nil || len(f.metrics) != 1 {
			t.Fatalf("%s: not stored with one metric", name)
		}
		out := ""
		for _, lp := range f.metrics[0].Labels() {
			out += lp.GetName() + "=" + lp.GetValue() + ","
		}
		return out
	}
	if got, want := labels("a"), "instance=i,job=j,"; got != want {
		t.Fatalf("a's labels %q, want %q", got, want)
	}
	if got, want := labels("b"), "instance=i,job=j,x=y,"; got != want {
		t.Fatalf("b's labels %q, want %q", got, want)
	}
	a := g.Families.Get("a").metrics[0].Labels()
	pushTime := g.Families.Get(PushTimeMetricName).metrics[0].Labels()
	if &a[0] != &pushTime[0] || cap(a) != len(a) {
		t.Fatal("a metric without labels holds label slots of its own, not the group's shared pairs")
	}
	b := g.Families.Get("b").metrics[0].Labels()
	c := g.Families.Get("c").metrics[0].Labels()
	d := g.Families.Get("d").metrics[0].Labels()
	if &b[0] == &pushTime[0] {
		t.Fatal("a labelled metric holds the group's shared pairs")
	}
	if &b[0] != &c[0] || cap(b) != len(b) {
		t.Fatal("two metrics of a push with the same labels hold a slice each, or one with room to spare")
	}
	if got, want := labels("d"), "instance=i,job=j,x=z,"; got != want || &d[0] == &b[0] {
		t.Fatalf("d's labels %q (shared with b: %v), want %q of its own", got, &d[0] == &b[0], want)
	}
}
