package fsm

import (
	"strings"
	"testing"
)

func sel(ms ...Matcher) Selector { return Selector(ms) }

// matching returns the groups the selectors match.
func matching(t *testing.T, s *FSM, sels []Selector) []*Group {
	t.Helper()
	cs, err := CompileSelectors(sels)
	if err != nil {
		t.Fatal(err)
	}
	var out []*Group
	for _, g := range s.Groups() {
		if cs.Matches(g.Labels) {
			out = append(out, g)
		}
	}
	return out
}

func TestSelectorsAreCheckedAsPrometheusChecksThem(t *testing.T) {
	for name, tc := range map[string]struct {
		sels []Selector
		want string
	}{
		"none":            {nil, "no selector"},
		"all match empty": {[]Selector{sel(Matcher{"job", MatchRegexp, ".*"})}, "must not match the empty string"},
		"empty selector":  {[]Selector{{}}, "must not match the empty string"},
		"not equal only":  {[]Selector{sel(Matcher{"job", MatchNotEqual, "x"})}, "must not match the empty string"},
		"metric name":     {[]Selector{sel(Matcher{"__name__", MatchEqual, "up"})}, "metric name"},
		"bad regexp":      {[]Selector{sel(Matcher{"job", MatchRegexp, "("})}, "missing closing )"},
		"unbalanced":      {[]Selector{sel(Matcher{"job", MatchRegexp, "ci)|(.*"})}, "unexpected )"},
		"bad type":        {[]Selector{sel(Matcher{"job", 9, "x"})}, "unknown match type"},
		"no name":         {[]Selector{sel(Matcher{"", MatchEqual, "x"})}, "invalid label name"},
		"long value":      {[]Selector{sel(Matcher{"job", MatchEqual, strings.Repeat("x", maxMatcherValueSize+1)})}, "longer than"},
		"too many":        {make([]Selector, maxSelectors+1), "at most"},
	} {
		_, err := CompileSelectors(tc.sels)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		c := &Command{Op: OpDeleteMatching, Selectors: tc.sels}
		if err := Validate(c); err == nil {
			t.Errorf("%s: command valid", name)
		}
	}
}

func TestDeleteMatchingRemovesExactlyTheMatchingGroups(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	for _, l := range [][]string{
		{"job", "ci-build", "branch", "feature-a"},
		{"job", "ci-build", "branch", "feature-b"},
		{"job", "ci-build", "branch", "main"},
		{"job", "ci-build"},
		{"job", "nightly", "branch", "feature-a"},
		{"job", "backup"},
	} {
		a.mustOK(pushCmd(t, OpPut, t1, "a 1\n", l...))
	}
	sels := []Selector{
		sel(Matcher{"job", MatchEqual, "ci-build"}, Matcher{"branch", MatchRegexp, "feature-.*"}),
		sel(Matcher{"job", MatchEqual, "backup"}),
	}
	listed := matching(t, a.s, sels)
	if len(listed) != 3 {
		t.Fatalf("dry run lists %d groups", len(listed))
	}
	// A regexp is anchored: "feature" alone does not match "feature-a".
	if l := matching(t, a.s, []Selector{sel(Matcher{"branch", MatchRegexp, "feature"})}); len(l) != 0 {
		t.Fatalf("unanchored match: %d", len(l))
	}
	// A missing label is "": branch!~".+" is the group without a branch.
	if l := matching(t, a.s, []Selector{sel(Matcher{"job", MatchEqual, "ci-build"}, Matcher{"branch", MatchNotRegexp, ".+"})}); len(l) != 1 || l[0].Labels.Len() != 1 {
		t.Fatalf("missing label as empty: %v", l)
	}
	a.mustOK(&Command{Op: OpDeleteMatching, TimeUnixNano: t2, Selectors: sels})
	var left []string
	for _, g := range a.s.Groups() {
		left = append(left, GroupingKey(g.Labels.Map()))
	}
	for _, g := range listed {
		for _, k := range left {
			if k == g.Key {
				t.Fatalf("%v survived", g.Labels)
			}
		}
	}
	if len(left) != 3 {
		t.Fatalf("left %d groups: %q", len(left), left)
	}
	// The command survives its encoding.
	b, _ := (&Command{Op: OpDeleteMatching, Selectors: sels}).Encode()
	d, err := DecodeCommand(b)
	if err != nil || len(d.Selectors) != 2 || d.Selectors[0].String() != `{job="ci-build", branch=~"feature-.*"}` {
		t.Fatalf("decoded %v, %v", d.Selectors, err)
	}
}
