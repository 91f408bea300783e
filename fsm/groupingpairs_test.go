package fsm

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestPushesToAGroupShareItsPairs: a push to an existing group, also one
// restored from a snapshot and one rejected (its failure record), stores
// metrics carrying the very grouping pairs of the metrics they replace, so
// settling the exposition order compares them without reading them.
func TestPushesToAGroupShareItsPairs(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	grouping := []string{"job", "j", "zone", "z"}
	a.mustOK(pushCmd(t, OpPut, 1e9, "a{x=\"1\"} 1\n", grouping...))
	labelsOf := func(s *FSM, name string) []*dto.LabelPair {
		t.Helper()
		g := s.Group(map[string]string{"job": "j", "zone": "z"})
		f := g.Families.Get(name)
		if f == nil || len(f.Metrics()) != 1 {
			t.Fatalf("group has no single metric of %s", name)
		}
		return f.Metrics()[0].labels
	}
	same := func(what string, got, want []*dto.LabelPair) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d pairs, want %d", what, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: pair %d (%s=%q) is a new copy, not the group's", what, i, got[i].GetName(), got[i].GetValue())
			}
		}
	}
	first, firstTime := labelsOf(a.s, "a"), labelsOf(a.s, PushTimeMetricName)
	if len(first) != 4 || len(firstTime) != 3 { // instance="", job, x, zone; instance, job, zone
		t.Fatalf("unexpected labels %v / %v", first, firstTime)
	}
	a.mustOK(pushCmd(t, OpPut, 2e9, "a{x=\"1\"} 2\n", grouping...))
	same("a pushed again", labelsOf(a.s, "a"), first)
	same("push_time_seconds pushed again", labelsOf(a.s, PushTimeMetricName), firstTime)

	a.mustFail(pushCmd(t, OpPut, 3e9, "a{x=\"1\"} 3 1000\n", grouping...), "timestamps")
	same("push_failure_time_seconds of a rejected push", labelsOf(a.s, PushFailureTimeMetricName), firstTime)

	restored := &applier{t: t, s: clone(t, a.s), index: a.index}
	before := labelsOf(restored.s, "a")
	restored.mustOK(pushCmd(t, OpPut, 4e9, "a{x=\"1\"} 4\n", grouping...))
	same("a pushed to a restored group", labelsOf(restored.s, "a"), before)
}

// TestReusedGroupingPairsTakeOnlyTheGroupsOwn: pairs are taken over only
// from labels that are exactly a group's stored pairs, sorted.
func TestReusedGroupingPairsTakeOnlyTheGroupsOwn(t *testing.T) {
	grouping := LabelsOf(map[string]string{"job": "j", "zone": "z"})
	for _, c := range []struct {
		name   string
		labels []*dto.LabelPair
		ok     bool
	}{
		{"the group's pairs", []*dto.LabelPair{lp("instance", ""), lp("job", "j"), lp("zone", "z")}, true},
		{"another value", []*dto.LabelPair{lp("instance", ""), lp("job", "j"), lp("zone", "y")}, false},
		{"a set instance", []*dto.LabelPair{lp("instance", "i"), lp("job", "j"), lp("zone", "z")}, false},
		{"no instance", []*dto.LabelPair{lp("job", "j"), lp("zone", "z")}, false},
		{"one more label", []*dto.LabelPair{lp("instance", ""), lp("job", "j"), lp("x", "1"), lp("zone", "z")}, false},
		{"unsorted", []*dto.LabelPair{lp("job", "j"), lp("instance", ""), lp("zone", "z")}, false},
		{"a name twice", []*dto.LabelPair{lp("instance", ""), lp("job", "j"), lp("job", "j")}, false},
	} {
		gp := reusedGroupingPairs(c.labels, grouping)
		if (gp != nil) != c.ok {
			t.Errorf("%s: reused %v, want %v", c.name, gp != nil, c.ok)
			continue
		}
		if gp == nil {
			continue
		}
		fresh := newGroupingPairs(grouping)
		if got, want := renderPairs(gp.sortedStored()), renderPairs(fresh.sortedStored()); got != want {
			t.Errorf("%s: stored pairs %s, new ones would be %s", c.name, got, want)
		}
	}
}

func renderPairs(pairs []*dto.LabelPair) string {
	s := ""
	for _, p := range pairs {
		s += p.GetName() + "=" + p.GetValue() + ","
	}
	return s
}
