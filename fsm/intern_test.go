package fsm

import (
	"fmt"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// TestInterningSharesEqualValues: families decoded by separate commands
// share their name, help, type and every label pair that is equal, and a
// pair differing in name or value (or whose bytes would be ambiguous if
// name and value were simply joined) is another one.
func TestInterningSharesEqualValues(t *testing.T) {
	decode := func(text string) *dto.MetricFamily {
		t.Helper()
		raw, err := proto.Marshal(parseText(t, text)[0])
		if err != nil {
			t.Fatal(err)
		}
		mfs, err := decodeFamilies([][]byte{raw}, familyDecoding{})
		if err != nil {
			t.Fatal(err)
		}
		return mfs[0]
	}
	a := decode("# HELP m_interned help text\n# TYPE m_interned gauge\nm_interned{ab=\"c\",kind=\"bench\"} 1\n")
	b := decode("# HELP m_interned help text\n# TYPE m_interned gauge\nm_interned{a=\"bc\",kind=\"bench\"} 2\n")
	if a.Name != b.Name || a.Help != b.Help || a.Type != b.Type {
		t.Errorf("name, help or type not shared: %p %p, %p %p, %p %p", a.Name, b.Name, a.Help, b.Help, a.Type, b.Type)
	}
	la, lb := a.Metric[0].Label, b.Metric[0].Label
	if la[1] != lb[1] {
		t.Errorf("kind=\"bench\" decoded twice: %v, %v", la[1], lb[1])
	}
	if la[0] == lb[0] || la[0].GetName() != "ab" || lb[0].GetName() != "a" || lb[0].GetValue() != "bc" {
		t.Errorf("ab=\"c\" and a=\"bc\" decoded as %v and %v", la[0], lb[0])
	}
}

// TestInternTableIsBounded: values decoded once are dropped after two
// rotations, so the table does not grow with unique label values, while
// a value decoded in every generation stays the same copy.
func TestInternTableIsBounded(t *testing.T) {
	tab := newInternTable()
	kept := tab.pair([]byte("kind"), []byte("bench"))
	for i := range 5 * internGeneration {
		tab.pair([]byte("path"), fmt.Appendf(nil, "/unique/%d", i))
		if i%(internGeneration/2) == 0 {
			if got := tab.pair([]byte("kind"), []byte("bench")); got != kept {
				t.Fatalf("after %d unique values, kind=\"bench\" is another copy", i)
			}
		}
	}
	if n := tab.size(); n > 2*internGeneration+1 {
		t.Fatalf("%d values in the table after %d unique ones", n, 5*internGeneration)
	}
	// Large values: bounded by bytes as well.
	big := make([]byte, 64<<10)
	for i := range 400 {
		copy(big, fmt.Sprint(i))
		tab.str(big)
		tab.pair([]byte("big"), big)
	}
	if n := tab.bytes(); n > 2*internGenerationBytes+2*len(big)+2*internGeneration*64 {
		t.Fatalf("%d bytes in the table after 800 values of 64 KiB", n)
	}
}

// TestSanitizingLeavesInternedPairsAlone: a pushed label named like a
// grouping label takes the grouping value by replacing the pair, never by
// changing it, so the equal pair of another group, shared with it by
// interning, keeps its value.
func TestSanitizingLeavesInternedPairsAlone(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, 1, "m_sanitized{env=\"pushed\"} 1\n", "job", "b"))
	a.mustOK(pushCmd(t, OpPut, 2, "m_sanitized{env=\"pushed\"} 2\n", "job", "a", "env", "grouping"))
	got := render(t, a.s)
	for _, want := range []string{
		`m_sanitized{env="pushed",instance="",job="b"} 1`,
		`m_sanitized{env="grouping",instance="",job="a"} 2`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("exposition lacks %s:\n%s", want, got)
		}
	}
}
