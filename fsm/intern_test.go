package fsm

import (
	"fmt"
	"runtime"
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

// A restore's decoding workers intern through caches of their own: the
// groups they decode share the table's copies all the same, whichever
// worker decoded them, with what Apply decodes, and a cache hands out what
// the table does, once per value.
func TestInternCachesHandOutTheTablesCopies(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	a := &applier{t: t, s: newTestFSM()}
	const groups = 2 * restoreBatch
	for g := range groups {
		a.mustOK(pushCmd(t, OpPut, int64(g+1)*1e9, "# HELP m_cached help\n# TYPE m_cached gauge\nm_cached{kind=\"cached\"} 1\n", "job", "j", "instance", fmt.Sprint(g)))
	}
	s := clone(t, a.s)
	h := interned.header(familyHeader{name: proto.String("m_cached"), help: proto.String("help"), typ: dto.MetricType_GAUGE.Enum()})
	pair := interned.pair([]byte("kind"), []byte("cached"))
	pushed := a.s.Groups()[0].Families.Get("m_cached")
	for _, g := range s.Groups() {
		f := g.Families.Get("m_cached")
		if f.hdr != h || f.hdr != pushed.hdr {
			t.Fatalf("group %s: its header is not the table's", g.Key)
		}
		if lp := labelNamed(f.Metrics()[0].labels, "kind"); lp != pair {
			t.Fatalf("group %s: its kind pair is not the table's", g.Key)
		}
	}

	c := newInternCache()
	for range 2 {
		if c.str([]byte("m_cached")) != interned.str([]byte("m_cached")) || c.pair([]byte("kind"), []byte("cached")) != pair ||
			c.header(familyHeader{name: proto.String("m_cached"), help: proto.String("help"), typ: dto.MetricType_GAUGE.Enum()}) != h {
			t.Fatal("a cache hands out other copies than the table")
		}
	}
	if len(c.strs) != 1 || len(c.pairs) != 1 || len(c.headers) != 1 {
		t.Fatalf("the cache holds %d strings, %d pairs, %d headers, want one each", len(c.strs), len(c.pairs), len(c.headers))
	}
	var none *internCache
	if none.str([]byte("m_cached")) != interned.str([]byte("m_cached")) || none.pair([]byte("kind"), []byte("cached")) != pair {
		t.Fatal("no cache is not the table itself")
	}
}

// labelNamed returns the pair named name among labels, or nil.
func labelNamed(labels []*dto.LabelPair, name string) *dto.LabelPair {
	for _, lp := range labels {
		if lp.GetName() == name {
			return lp
		}
	}
	return nil
}
