package fsm

import (
	"testing"
)

// TestUnlabelledMetricsShareTheGroupsPairs: a metric pushed without labels
// of its own is stored with the group's pairs, sorted, in the one slice
// the group's timestamp metrics hold too (no label slots of its own); a
// metric with labels keeps its own. Applying the same command again, and
// a push to another group, leave both as they were.
func TestUnlabelledMetricsShareTheGroupsPairs(t *testing.T) {
	s := newTestFSM()
	cmd := pushCmd(t, OpPut, 1, "# TYPE a gauge\na 1\n# TYPE b gauge\nb{x=\"y\"} 2\n", "job", "j", "instance", "i")
	for index := uint64(1); index <= 2; index++ {
		if res := s.ApplyCommand(index, cmd); res.Err != nil {
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
	if b := g.Families.Get("b").metrics[0].Labels(); &b[0] == &pushTime[0] {
		t.Fatal("a labelled metric holds the group's shared pairs")
	}
}
