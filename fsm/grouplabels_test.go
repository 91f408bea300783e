package fsm

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// TestGroupLabelsAnswerAsTheirMap: a group's labels, a sorted list, read,
// print, encode to JSON and make the grouping key as the map they are
// made of.
func TestGroupLabelsAnswerAsTheirMap(t *testing.T) {
	for _, m := range []map[string]string{
		{},
		{"job": "j"},
		{"job": "j", "instance": "", "zone": "z", "a": "1"},
	} {
		l := LabelsOf(m)
		if l.Len() != len(m) || !maps.Equal(l.Map(), m) {
			t.Fatalf("%v: %d labels, map %v", m, l.Len(), l.Map())
		}
		for n, v := range m {
			if got, ok := l.Lookup(n); !ok || got != v || l.Get(n) != v {
				t.Fatalf("%v: %s is %q (%v)", m, n, got, ok)
			}
		}
		if _, ok := l.Lookup("absent"); ok || l.Get("absent") != "" {
			t.Fatalf("%v: an absent label found", m)
		}
		var names []string
		for n := range l.All() {
			names = append(names, n)
		}
		if want := slices.Sorted(maps.Keys(m)); !slices.Equal(names, want) {
			t.Fatalf("%v: names %v, want %v", m, names, want)
		}
		if got, want := l.String(), fmt.Sprint(m); got != want {
			t.Fatalf("printed %s, want %s", got, want)
		}
		got, _ := json.Marshal(l)
		if want, _ := json.Marshal(m); string(got) != string(want) {
			t.Fatalf("JSON %s, want %s", got, want)
		}
		if got, want := l.key(), GroupingKey(m); got != want {
			t.Fatalf("key %q, want %q", got, want)
		}
	}
}

// TestGroupRecordWithALabelTwiceIsRefused: a group record naming a
// grouping label twice (no writer of ours makes one) is refused, where a
// map of the labels took the last value.
func TestGroupRecordWithALabelTwiceIsRefused(t *testing.T) {
	rec := appendLabels(nil, groupFieldLabel, LabelsOf(map[string]string{"job": "a"}))
	rec = appendLabels(rec, groupFieldLabel, LabelsOf(map[string]string{"job": "b"}))
	if _, err := decodeGroup(rec, nil); err == nil || !strings.Contains(err.Error(), `"job" twice`) {
		t.Fatalf("decoded with the job label twice: %v", err)
	}
	once := appendLabels(nil, groupFieldLabel, LabelsOf(map[string]string{"job": "a", "x": "1"}))
	g, err := decodeGroup(once, nil)
	if err != nil || g.Labels.Get("x") != "1" || g.Key != GroupingKey(map[string]string{"job": "a", "x": "1"}) {
		t.Fatalf("decoded %v, %v", g, err)
	}
}
