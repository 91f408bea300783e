package fsm

import (
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// TestFamiliesWith checks the list a change builds: sorted by name, the
// added families in place of those of the same name (the last added of a
// name wins), the kept ones filtered, the old list untouched, and a
// capacity no larger than its length (the list is stored for good).
func TestFamiliesWith(t *testing.T) {
	fam := func(name string, ts int64) *Family {
		return NewFamily(parseText(t, name+" 1\n")[0], ts)
	}
	a, b, c, d := fam("a", 1), fam("b", 1), fam("c", 1), fam("d", 1)
	old := NewFamilies([]*Family{d, b, a})
	if got := old.Names(); !slices.Equal(got, []string{"a", "b", "d"}) {
		t.Fatalf("NewFamilies: %v, want sorted", got)
	}
	b2, b3 := fam("b", 2), fam("b", 3)
	for name, tc := range map[string]struct {
		keep  func(*Family) bool
		add   []*Family
		names []string
		times []int64
	}{
		"nothing added":                 {add: nil, names: []string{"a", "b", "d"}, times: []int64{1, 1, 1}},
		"one replaced":                  {add: []*Family{b2}, names: []string{"a", "b", "d"}, times: []int64{1, 2, 1}},
		"the last of a name wins":       {add: []*Family{b2, c, b3}, names: []string{"a", "b", "c", "d"}, times: []int64{1, 3, 1, 1}},
		"added before, between, after":  {add: []*Family{fam("_0", 5), c, fam("e", 5)}, names: []string{"_0", "a", "b", "c", "d", "e"}, times: []int64{5, 1, 1, 1, 1, 5}},
		"only b kept, c added":          {keep: func(f *Family) bool { return f.Name() == "b" }, add: []*Family{c}, names: []string{"b", "c"}, times: []int64{1, 1}},
		"a replacement is always taken": {keep: func(*Family) bool { return false }, add: []*Family{b2}, names: []string{"b"}, times: []int64{2}},
	} {
		got := old.with(tc.keep, slices.Clone(tc.add))
		var times []int64
		for _, f := range got {
			times = append(times, f.TimeUnixNano)
		}
		if !slices.Equal(got.Names(), tc.names) || !slices.Equal(times, tc.times) || cap(got) != len(got) {
			t.Errorf("%s: %v at times %v (capacity %d), want %v at %v", name, got.Names(), times, cap(got), tc.names, tc.times)
		}
		for _, n := range tc.names {
			if f := got.Get(n); f == nil || f.Name() != n {
				t.Errorf("%s: Get(%q) = %v", name, n, f)
			}
		}
		if got.Get("zz") != nil || got.Get("") != nil {
			t.Errorf("%s: Get found a name not in the list", name)
		}
	}
	if !slices.Equal(old, Families{a, b, d}) {
		t.Fatalf("the old list changed: %v", old.Names())
	}
}

// TestValidateGroupWantsFamiliesInOrder: a group whose families are out of
// order, named twice or missing (which only a hand-built command can hold:
// decoding sorts them) is refused, not stored.
func TestValidateGroupWantsFamiliesInOrder(t *testing.T) {
	fam := func(name string) *Family { return NewFamily(parseText(t, name+"{instance=\"\",job=\"j\"} 1\n")[0], 0) }
	for name, fams := range map[string]Families{
		"out of order": {fam("b"), fam("a")},
		"named twice":  {fam("a"), fam("a")},
		"nil":          {fam("a"), nil},
		"no message":   {{}},
	} {
		err := ValidateGroup(&Group{Labels: LabelsOf(map[string]string{"job": "j"}), Families: fams})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := ValidateGroup(&Group{Labels: LabelsOf(map[string]string{"job": "j"}), Families: Families{fam("a"), fam("b")}}); err != nil {
		t.Fatalf("families in order: %v", err)
	}
}

// TestFamilyHeadersAreShared: the families of one name pushed by many
// groups share one header, in the store that applied the pushes and in one
// restored from its snapshot; a family with another help text has its own,
// and every family reads back its own name, help and type.
func TestFamilyHeadersAreShared(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	for i := range 3 {
		a.mustOK(pushCmd(t, OpPut, t1, "# HELP g Help.\n# TYPE g gauge\ng 1\n", "job", "j", "instance", string(rune('a'+i))))
	}
	a.mustOK(pushCmd(t, OpPut, t1, "# HELP g Other help.\n# TYPE g gauge\ng 1\n", "job", "k"))
	restored := clone(t, a.s)
	for what, s := range map[string]*FSM{"applied": a.s, "restored": restored} {
		headers := map[*familyHeader]string{}
		for _, g := range s.Groups() {
			f := g.Families.Get("g")
			if f.Name() != "g" || f.Type() != dto.MetricType_GAUGE {
				t.Fatalf("%s: group %v reads back %q of type %v", what, g.Labels, f.Name(), f.Type())
			}
			headers[f.hdr] = f.Help()
		}
		if len(headers) != 2 {
			t.Fatalf("%s: %d headers for one name with two help texts, want 2: %v", what, len(headers), headers)
		}
	}
}

// TestExposedHelpFollowsTheSmallestKeyThroughEmptyFamilies: the help of
// a name's exposition is the one of the group with the smallest key that
// holds the name, a family without metrics included; when that group goes,
// the next one's (found among the settled order and the empty families),
// in the store that applied the pushes and in one restored from its
// snapshot.
func TestExposedHelpFollowsTheSmallestKeyThroughEmptyFamilies(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	for _, job := range []string{"a", "b"} {
		// The text format drops a family without metrics; protobuf keeps it.
		empty := &dto.MetricFamily{Name: proto.String("x"), Help: proto.String("From " + job + "."), Type: dto.MetricType_GAUGE.Enum()}
		a.mustOK(&Command{Op: OpPut, Labels: map[string]string{"job": job}, Families: []*dto.MetricFamily{empty}, TimeUnixNano: t1})
	}
	a.mustOK(pushCmd(t, OpPut, t1, "# HELP x From c.\n# TYPE x gauge\nx 3\n", "job", "c"))
	a.mustOK(pushCmd(t, OpPut, t1, "# HELP x From d.\n# TYPE x gauge\nx 4\n", "job", "d"))
	help := func(s *FSM) string {
		for _, mf := range s.Families() {
			if mf.GetName() == "x" {
				return mf.GetHelp()
			}
		}
		return "(none)"
	}
	restoredHelp := func() string { return help(clone(t, a.s)) }
	for _, step := range []struct{ deleted, want string }{{"", "From a."}, {"a", "From b."}, {"b", "From c."}, {"c", "From d."}} {
		if step.deleted != "" {
			a.mustOK(pushCmd(t, OpDelete, t2, "", "job", step.deleted))
		}
		if got, restored := help(a.s), restoredHelp(); got != step.want || restored != step.want {
			t.Fatalf("after deleting %q: help %q, restored %q, want %q", step.deleted, got, restored, step.want)
		}
	}
}
