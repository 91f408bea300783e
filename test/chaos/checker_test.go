package chaos

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"
)

// These tests check the checker itself (they need no binary and also run
// with -short).

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// op builds an op on key k: kind is PUT, POSTa, POSTb or DELETE.
func op(id, kind string, start, end int, res Outcome, index uint64) Op {
	o := Op{ID: id, Key: "k", Start: ms(start), End: ms(end), Result: res, Index: index, Node: "n1"}
	switch kind {
	case "POSTa", "POSTb":
		o.Kind, o.Family = "POST", kind[4:]
	case "PUT":
		o.Kind, o.Family = "PUT", "a"
	default:
		o.Kind = kind
	}
	return o
}

func check(ops []Op, final State) Report {
	finals := map[string]State{}
	if final != (State{}) {
		finals["k"] = final
	}
	return checkHistory(ops, []string{"k"}, finals)
}

func TestCheckerSequential(t *testing.T) {
	ops := []Op{
		op("x", "PUT", 0, 1, Acked, 10),
		op("y", "POSTb", 2, 3, Acked, 11),
		op("z", "POSTa", 4, 5, Failed, 0),
	}
	if r := check(ops, State{"x", "y"}); !r.OK() {
		t.Fatalf("correct final state rejected: %v", r.Problems)
	}
	r := check(ops, State{"x", ""})
	if r.OK() || r.Lost != 1 || r.Keys[0].Lost[0].ID != "y" {
		t.Fatalf("lost POST not reported: lost=%d %v", r.Lost, r.Problems)
	}
	// A 503 write must not be visible.
	if r := check(ops, State{"z", "y"}); r.OK() || !strings.Contains(strings.Join(r.Problems, "\n"), "503") {
		t.Fatalf("visible 503 write not reported: %v", r.Problems)
	}
	// A value nobody wrote.
	if r := check(ops, State{"x", "nobody"}); r.OK() {
		t.Fatal("phantom value accepted")
	}
	// PUT replaces the group: chaos_b must be gone after a later PUT.
	ops = append(ops, op("w", "PUT", 6, 7, Acked, 12))
	if r := check(ops, State{"w", "y"}); r.OK() {
		t.Fatal("chaos_b survived a later PUT")
	}
	if r := check(ops, State{"w", ""}); !r.OK() {
		t.Fatalf("correct final state rejected: %v", r.Problems)
	}
}

func TestCheckerDelete(t *testing.T) {
	ops := []Op{op("x", "PUT", 0, 1, Acked, 10), op("d", "DELETE", 2, 3, Acked, 11)}
	if r := check(ops, State{}); !r.OK() {
		t.Fatalf("deleted group rejected: %v", r.Problems)
	}
	if r := check(ops, State{"x", ""}); r.OK() || r.Lost != 1 {
		t.Fatalf("lost DELETE not reported: %v", r.Problems)
	}
	// An unknown DELETE may or may not have happened.
	ops = []Op{op("x", "PUT", 0, 1, Acked, 10), op("d", "DELETE", 2, 9, Unknown, 0)}
	for _, final := range []State{{}, {"x", ""}} {
		if r := check(ops, final); !r.OK() {
			t.Fatalf("final %v rejected: %v", final, r.Problems)
		}
	}
	// No op at all: the group must not exist.
	if r := check(nil, State{}); !r.OK() {
		t.Fatalf("empty history rejected: %v", r.Problems)
	}
}

func TestCheckerUnknownPlacement(t *testing.T) {
	// u (unknown PUT) started after x and z completed: it can only come
	// after both, so its PUT removed chaos_b.
	ops := []Op{
		op("x", "PUT", 0, 1, Acked, 10),
		op("z", "POSTb", 2, 3, Acked, 11),
		op("u", "PUT", 5, 8, Unknown, 0),
	}
	if r := check(ops, State{"u", ""}); !r.OK() {
		t.Fatalf("unknown write applied last rejected: %v", r.Problems)
	}
	if r := check(ops, State{"x", "z"}); !r.OK() {
		t.Fatalf("unknown write not applied rejected: %v", r.Problems)
	}
	if r := check(ops, State{"u", "z"}); r.OK() {
		t.Fatal("unknown PUT placed before a write that completed before it started")
	}
	// Started before z completed: it may precede z.
	ops[2].Start = ms(2)
	if r := check(ops, State{"u", "z"}); !r.OK() {
		t.Fatalf("concurrent unknown write before z rejected: %v", r.Problems)
	}
	// A 504 that overwrote the last acknowledged write is not a loss.
	ops = []Op{op("x", "PUT", 0, 1, Acked, 10), op("u", "DELETE", 0, 9, Unknown, 0)}
	if r := check(ops, State{}); !r.OK() || r.Lost != 0 {
		t.Fatalf("delete of unknown outcome counted as loss: %v", r.Problems)
	}
}

func TestCheckerConcurrentAcked(t *testing.T) {
	// x and y overlap; y has the higher index, but x may have been applied
	// again (a retried attempt) before x was acknowledged.
	ops := []Op{op("x", "PUT", 0, 10, Acked, 10), op("y", "PUT", 1, 2, Acked, 11)}
	if r := check(ops, State{"y", ""}); !r.OK() {
		t.Fatalf("last acknowledged write rejected: %v", r.Problems)
	}
	if r := check(ops, State{"x", ""}); !r.OK() || r.Lost != 0 {
		t.Fatalf("re-application within x's lifetime rejected: %v", r.Problems)
	}
	// Not once y started after x was acknowledged.
	ops = []Op{op("x", "PUT", 0, 1, Acked, 10), op("y", "PUT", 2, 3, Acked, 11)}
	if r := check(ops, State{"x", ""}); r.OK() || r.Lost != 1 {
		t.Fatalf("overwritten write resurrected unnoticed: %v", r.Problems)
	}
}

func TestCheckerIndexes(t *testing.T) {
	ops := []Op{op("x", "PUT", 0, 1, Acked, 20), op("y", "PUT", 2, 3, Acked, 15)}
	r := check(ops, State{"y", ""})
	if r.OK() || !strings.Contains(strings.Join(r.Problems, "\n"), "contradicts real time") {
		t.Fatalf("index order against real time not reported: %v", r.Problems)
	}
	ops = []Op{op("x", "PUT", 0, 5, Acked, 20), op("y", "PUT", 1, 3, Acked, 20)}
	if r := check(ops, State{"y", ""}); r.OK() {
		t.Fatal("two writes at one index accepted")
	}
	ops = []Op{op("x", "PUT", 0, 5, Acked, 0)}
	if r := check(ops, State{"x", ""}); r.OK() {
		t.Fatal("acknowledged write without index accepted")
	}
}

func TestTermLeaders(t *testing.T) {
	seen := map[uint64]map[string]string{2: {"n1": "n1"}, 3: {"n2": "n1", "n3": "n3"}}
	p := termLeaders(seen)
	if len(p) != 1 || !strings.Contains(p[0], "term 3") {
		t.Fatalf("got %v", p)
	}
}

func TestPushedFamilies(t *testing.T) {
	text := `# HELP go_gc_duration_seconds x
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 1
go_gc_duration_seconds_sum 1
go_gc_duration_seconds_count 1
# TYPE chaos_a gauge
chaos_a{instance="",job="chaos",k="k1",op="c1-1"} 1
# HELP push_time_seconds Last Unix time.
# TYPE push_time_seconds gauge
push_time_seconds{instance="",job="chaos",k="k1"} 1.7e+09
# HELP pushgateway_build_info b
# TYPE pushgateway_build_info gauge
pushgateway_build_info{version=""} 1
`
	want := `# TYPE chaos_a gauge
chaos_a{instance="",job="chaos",k="k1",op="c1-1"} 1
# HELP push_time_seconds Last Unix time.
# TYPE push_time_seconds gauge
push_time_seconds{instance="",job="chaos",k="k1"} 1.7e+09
`
	if got := pushedFamilies(text); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// simulate produces a history of a correct system: every acknowledged
// write takes effect at one point within its lifetime, indexes follow
// those points, unknown writes take effect at a point after their start
// or never, 503s never. It returns the ops and the final state.
func simulate(rng *rand.Rand, n int) ([]Op, State) {
	type ev struct {
		at int
		o  Op
	}
	var ops []Op
	var evs []ev
	kinds := []string{"PUT", "POSTa", "POSTb", "DELETE"}
	for i := 0; i < n; i++ {
		start := rng.Intn(20)
		end := start + rng.Intn(8)
		res := []Outcome{Acked, Acked, Acked, Unknown, Failed}[rng.Intn(5)]
		o := op(fmt.Sprintf("o%d", i), kinds[rng.Intn(4)], start, end, res, 0)
		ops = append(ops, o)
		switch res {
		case Acked:
			at := start*10 + rng.Intn((end-start)*10+1)
			evs = append(evs, ev{at, o})
			// A retried attempt applied earlier (or later, but before
			// the acknowledgement) changes nothing observable beyond
			// what the checker allows.
			if rng.Intn(4) == 0 {
				evs = append(evs, ev{start*10 + rng.Intn((end-start)*10+1), o})
			}
		case Unknown:
			if rng.Intn(2) == 0 {
				evs = append(evs, ev{start*10 + rng.Intn(300), o})
			}
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	// Indexes: the position of one of an acknowledged op's applications
	// (the attempt that was confirmed; the other may come before or after
	// it, but before the acknowledgement).
	var st State
	apps := map[string][]int{}
	for i, e := range evs {
		apps[e.o.ID] = append(apps[e.o.ID], i+1)
		mask, vals := e.o.writes()
		for f := 0; f < 2; f++ {
			if mask&(1<<f) != 0 {
				st[f] = vals[f]
			}
		}
	}
	for i := range ops {
		if a := apps[ops[i].ID]; ops[i].Result == Acked {
			ops[i].Index = uint64(100 + a[rng.Intn(len(a))])
		}
	}
	return ops, st
}

// bruteForce decides check (1) by enumerating every placement the model
// allows: each unknown op absent or at one position >= its minimum, each
// acknowledged op optionally re-applied once within its window, every
// order among ops at one position.
func bruteForce(ops []Op, final State) bool {
	var acked, unknown []Op
	for _, o := range ops {
		if o.Result == Acked {
			acked = append(acked, o)
		} else if o.maybeApplied() {
			unknown = append(unknown, o)
		}
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i].Index < acked[j].Index })
	m := len(acked)
	type item struct {
		o      Op
		lo, hi int
	}
	var items []item
	for _, u := range unknown {
		lo := 0
		for i, a := range acked {
			if a.End < u.Start {
				lo = i + 1
			}
		}
		items = append(items, item{u, lo, m})
	}
	for k, a := range acked {
		hi := m
		for j := k + 1; j < m; j++ {
			if acked[j].Start > a.End {
				hi = j
				break
			}
		}
		items = append(items, item{a, k + 1, hi})
	}
	pos := make([]int, len(items))
	assign := func(s *State, o Op) {
		mask, vals := o.writes()
		for f := 0; f < 2; f++ {
			if mask&(1<<f) != 0 {
				s[f] = vals[f]
			}
		}
	}
	// valid: a re-application (an acknowledged op among items) precedes
	// every unknown op that started after that op completed.
	valid := func(seq []int) bool {
		for i, a := range seq {
			if items[a].o.Result != Acked {
				continue
			}
			for _, u := range seq[:i] {
				if items[u].o.Result != Acked && items[a].o.End < items[u].o.Start {
					return false
				}
			}
		}
		return true
	}
	var permute func(group []int, s State, p int, seq []int) bool
	var run func(p int, s State, seq []int) bool
	run = func(p int, s State, seq []int) bool {
		if p > m {
			return s == final && valid(seq)
		}
		if p > 0 {
			assign(&s, acked[p-1])
		}
		var group []int
		for i := range items {
			if pos[i] == p {
				group = append(group, i)
			}
		}
		return permute(group, s, p, seq)
	}
	permute = func(group []int, s State, p int, seq []int) bool {
		if len(group) == 0 {
			return run(p+1, s, seq)
		}
		for i := range group {
			rest := append(append([]int(nil), group[:i]...), group[i+1:]...)
			s2 := s
			assign(&s2, items[group[i]].o)
			if permute(rest, s2, p, append(append([]int(nil), seq...), group[i])) {
				return true
			}
		}
		return false
	}
	var choose func(i int) bool
	choose = func(i int) bool {
		if i == len(items) {
			return run(0, State{}, nil)
		}
		pos[i] = -1
		if choose(i + 1) {
			return true
		}
		for p := items[i].lo; p <= items[i].hi; p++ {
			pos[i] = p
			if choose(i + 1) {
				return true
			}
		}
		return false
	}
	return choose(0)
}

// TestCheckerAgainstSimulation: histories of a correct system always pass;
// on random final states the checker agrees with brute force.
func TestCheckerAgainstSimulation(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	rejected := 0
	for i := 0; i < 3000; i++ {
		ops, final := simulate(rng, 1+rng.Intn(6))
		kr := checkKey("k", ops, final)
		if !kr.Explained || len(kr.Lost) > 0 {
			t.Fatalf("history of a correct system rejected (lost %v):\n%s\nfinal %s", kr.Lost, fmtOps(ops), fmtState(final))
		}
		if !bruteForce(ops, final) {
			t.Fatalf("brute force rejects a correct history:\n%s\nfinal %s", fmtOps(ops), fmtState(final))
		}
		// A random final state: the checker must agree with brute force.
		var cand []string
		for _, o := range ops {
			cand = append(cand, o.ID)
		}
		cand = append(cand, "", "")
		other := State{cand[rng.Intn(len(cand))], cand[rng.Intn(len(cand))]}
		got, want := checkKey("k", ops, other).Explained, bruteForce(ops, other)
		if got != want {
			t.Fatalf("checker says %v, brute force %v:\n%s\nfinal %s", got, want, fmtOps(ops), fmtState(other))
		}
		if !want {
			rejected++
		}
	}
	if rejected < 100 {
		t.Fatalf("only %d random final states rejected: the test does not exercise rejection", rejected)
	}
}

func fmtOps(ops []Op) string {
	var b strings.Builder
	for _, o := range ops {
		fmt.Fprintf(&b, "  %s %s%s [%v,%v] %s idx=%d\n", o.ID, o.Kind, o.Family, o.Start, o.End, o.Result, o.Index)
	}
	return b.String()
}
