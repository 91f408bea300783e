// The history checker of the chaos test (see the package comment in
// main_test.go); its own tests are in checker_test.go.

package chaos

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// The model. Every key (grouping key job="chaos",k=<key>) holds two
// families, chaos_a and chaos_b; each family, when present, holds exactly
// one series whose op label is the unique id of the write that put it
// there. The workload's writes are assignments of fields:
//
//	PUT    body chaos_a{op=ID}: a := ID, b := none (PUT replaces the group)
//	POST   body chaos_F{op=ID}: F := ID           (POST replaces one family)
//	DELETE                      a := none, b := none
//
// So the state of a key is the pair (a, b), and the final value of a field
// is the value of the last write, in log order, that assigns it.
//
// What the checker knows (see the README, "Guarantees"):
//   - An acknowledged write (200/202) was committed and applied at the raft
//     index its X-Pushgateway-Raft-Index header names; acknowledged writes
//     are totally ordered by that index.
//   - A 503, or a connection that was never established, was certainly not
//     applied: its value must never be visible.
//   - A 504, a timeout or a broken connection is of unknown outcome: the
//     write may have been applied (possibly more than once, since the node
//     retries: every write is idempotent) at any index after it started,
//     or not at all.
//
// Check (1), per key: does some log order explain the final state? The
// acknowledged writes stand at their indexes; an unknown write may be
// inserted anywhere after the acknowledged writes that completed before it
// started; an acknowledged write may also be applied again after its own
// index but before any acknowledged write that started after it completed
// (an earlier duplicate is overwritten by the acknowledged application and
// changes nothing), and before any unknown write that started after it was
// acknowledged. This is linearizability of the write history with the raft
// indexes as the order of the acknowledged writes. Since all writes are
// field assignments, only "does each field equal its final value?"
// matters: the search runs over four abstract states (each with the lowest
// reachable "latest start of an applied unknown write"), positions 0..m, in
// O(m * writes) time, and applying an unknown write more than once is
// allowed because the later application overwrites everything the earlier
// one assigned. TestCheckerAgainstSimulation compares it with a brute-force
// enumeration of every allowed order.
//
// Check (2): an acknowledged write that is the last acknowledged writer of
// a field (the highest index among the acknowledged writes assigning it)
// is lost when the field does not show its value and no write that may
// come after it in the log (an unknown write, or a re-application of a
// concurrent acknowledged write) assigns the value the field shows.

// Outcome classifies a write's answer.
type Outcome int

const (
	// Acked is 200 (PUT/POST) or 202 (DELETE): applied at Index.
	Acked Outcome = iota
	// Failed is 503: certainly not applied.
	Failed
	// NotSent is a connection that could not be established: certainly
	// not applied.
	NotSent
	// Unknown is 504, a timeout or a broken connection: maybe applied.
	Unknown
	// Unexpected is any other status (400, 500, ...): treated as maybe
	// applied by the checker, and failing the test.
	Unexpected
)

// String names the outcome as the report prints it.
func (o Outcome) String() string {
	return [...]string{"ok", "503", "not-sent", "unknown", "unexpected"}[o]
}

// Op is one recorded write.
type Op struct {
	Client int           `json:"client"`
	ID     string        `json:"id"`     // unique value of the op label
	Kind   string        `json:"kind"`   // PUT, POST, DELETE
	Family string        `json:"family"` // "a" or "b" for POST, "a" for PUT
	Key    string        `json:"key"`
	Node   string        `json:"node"`
	Start  time.Duration `json:"start"` // since the run's start (monotonic)
	End    time.Duration `json:"end"`
	Status int           `json:"status,omitempty"`
	Index  uint64        `json:"index,omitempty"`
	Err    string        `json:"err,omitempty"`
	Result Outcome       `json:"result"`
}

func (o Op) describe() string {
	if o.Kind == "DELETE" {
		return "DELETE"
	}
	return o.Kind + " chaos_" + o.Family
}

// maybeApplied reports whether the op's outcome is unknown.
func (o Op) maybeApplied() bool { return o.Result == Unknown || o.Result == Unexpected }

// State is a key's final state: the op id in chaos_a and chaos_b, "" when
// the family (or the whole group) is absent.
type State [2]string

func famIndex(f string) int {
	if f == "b" {
		return 1
	}
	return 0
}

// writes returns the fields the op assigns (bit 0: a, bit 1: b) and the
// values it assigns them.
func (o Op) writes() (mask uint8, vals State) {
	switch o.Kind {
	case "PUT":
		return 3, State{o.ID, ""}
	case "POST":
		f := famIndex(o.Family)
		vals[f] = o.ID
		return 1 << f, vals
	default: // DELETE
		return 3, State{}
	}
}

// effect is an op's action on the abstract state "field f equals its
// final value" (bit f).
type effect struct{ mask, eq uint8 }

func effectOf(o Op, target State) effect {
	mask, vals := o.writes()
	var eq uint8
	for f := 0; f < 2; f++ {
		if mask&(1<<f) != 0 && vals[f] == target[f] {
			eq |= 1 << f
		}
	}
	return effect{mask, eq}
}

func (e effect) apply(s uint8) uint8 { return s&^e.mask | e.eq&e.mask }

// KeyReport is the verdict for one key.
type KeyReport struct {
	Key       string
	Final     State
	Acked     int
	Unknown   int
	Explained bool  // check (1)
	Lost      []Op  // check (2)
	LastAcked []*Op // last acknowledged writer of a and b (nil if none)
}

// checkKey runs checks (1) and (2) for one key. ops are the key's writes
// of every outcome.
func checkKey(key string, ops []Op, final State) KeyReport {
	rep := KeyReport{Key: key, Final: final, LastAcked: make([]*Op, 2)}
	var acked, unknown []Op
	for _, o := range ops {
		switch {
		case o.Result == Acked:
			acked = append(acked, o)
		case o.maybeApplied():
			unknown = append(unknown, o)
		}
	}
	sort.SliceStable(acked, func(i, j int) bool { return acked[i].Index < acked[j].Index })
	rep.Acked, rep.Unknown = len(acked), len(unknown)
	m := len(acked)

	// Positions: p = after the p-th acknowledged write (1-based), 0 = before
	// all. minPos: an unknown write comes after every acknowledged write
	// that completed before it started. maxPos: an acknowledged write may be
	// re-applied up to (not past) the first acknowledged write that started
	// after it completed.
	type unknownEff struct {
		e     effect
		start time.Duration
	}
	unknownAt := make([][]unknownEff, m+1)
	for _, u := range unknown {
		p := 0
		for i, a := range acked {
			if a.End < u.Start {
				p = i + 1
			}
		}
		unknownAt[p] = append(unknownAt[p], unknownEff{effectOf(u, final), u.Start})
	}
	maxPos := make([]int, m)
	for k, a := range acked {
		maxPos[k] = m
		for j := k + 1; j < m; j++ {
			if acked[j].Start > a.End {
				maxPos[k] = j // position j = after acked[j-1], before acked[j]
				break
			}
		}
	}

	// The search state is the abstract state s (bit f: field f equals its
	// final value) and a floor: the latest start among the unknown writes
	// applied so far. A re-application of an acknowledged write happens
	// before its acknowledgement, so it cannot follow an unknown write that
	// started after that acknowledgement: it needs End >= floor. A lower
	// floor allows more, so per s only the lowest reachable floor is kept.
	const unreachable = time.Duration(math.MaxInt64)
	var best [4]time.Duration
	for s := range best {
		best[s] = unreachable
	}
	var init uint8
	for f := 0; f < 2; f++ {
		if final[f] == "" {
			init |= 1 << f
		}
	}
	best[init] = time.Duration(math.MinInt64)
	// Unknown writes eligible so far, per effect, with the earliest start
	// (it dominates the others of that effect).
	var pool [4][4]time.Duration
	for i := range pool {
		for j := range pool[i] {
			pool[i][j] = unreachable
		}
	}
	closure := func(p int) {
		var reapply []Op
		for k := 0; k < p && k < m; k++ {
			if maxPos[k] >= p {
				reapply = append(reapply, acked[k])
			}
		}
		relax := func(s uint8, floor time.Duration) bool {
			if floor < best[s] {
				best[s] = floor
				return true
			}
			return false
		}
		for changed := true; changed; {
			changed = false
			for s := uint8(0); s < 4; s++ {
				floor := best[s]
				if floor == unreachable {
					continue
				}
				for mask := uint8(0); mask < 4; mask++ {
					for eq := uint8(0); eq < 4; eq++ {
						if start := pool[mask][eq]; start != unreachable {
							if relax(effect{mask, eq}.apply(s), max(floor, start)) {
								changed = true
							}
						}
					}
				}
				for _, a := range reapply {
					if a.End >= floor && relax(effectOf(a, final).apply(s), floor) {
						changed = true
					}
				}
			}
		}
	}
	for p := 0; p <= m; p++ {
		if p > 0 {
			e := effectOf(acked[p-1], final)
			next := [4]time.Duration{unreachable, unreachable, unreachable, unreachable}
			for s := uint8(0); s < 4; s++ {
				if best[s] != unreachable {
					n := e.apply(s)
					next[n] = min(next[n], best[s])
				}
			}
			best = next
		}
		for _, u := range unknownAt[p] {
			pool[u.e.mask][u.e.eq] = min(pool[u.e.mask][u.e.eq], u.start)
		}
		closure(p)
	}
	rep.Explained = best[3] != unreachable

	// Check (2), only where (1) failed: an explained state lost nothing.
	lost := map[string]bool{}
	for f := 0; f < 2 && !rep.Explained; f++ {
		last := -1
		for k, a := range acked {
			if mask, _ := a.writes(); mask&(1<<f) != 0 {
				last = k
			}
		}
		if last < 0 {
			continue
		}
		l := acked[last]
		rep.LastAcked[f] = &acked[last]
		if _, vals := l.writes(); vals[f] == final[f] {
			continue
		}
		explained := false
		for _, u := range unknown {
			if mask, vals := u.writes(); mask&(1<<f) != 0 && vals[f] == final[f] {
				explained = true
			}
		}
		for k, a := range acked {
			if k != last && maxPos[k] >= last+1 {
				if mask, vals := a.writes(); mask&(1<<f) != 0 && vals[f] == final[f] {
					explained = true
				}
			}
		}
		if !explained && !lost[l.ID] {
			lost[l.ID] = true
			rep.Lost = append(rep.Lost, l)
		}
	}
	return rep
}

// Report is the checker's verdict on a whole run.
type Report struct {
	Keys     []KeyReport
	Problems []string // every violation, human-readable
	Lost     int
}

// OK reports whether no check failed.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// checkHistory runs checks (1) and (2) on every key, plus the invariants
// of the acknowledged indexes and of the visible values. finals holds every
// key's final state (a key absent from it has no group).
func checkHistory(ops []Op, keys []string, finals map[string]State) Report {
	var rep Report
	problem := func(format string, args ...any) {
		rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
	}
	byID := map[string]Op{}
	byKey := map[string][]Op{}
	var acked []Op
	for _, o := range ops {
		if _, dup := byID[o.ID]; dup {
			problem("op id %s recorded twice", o.ID)
		}
		byID[o.ID] = o
		byKey[o.Key] = append(byKey[o.Key], o)
		if o.Result == Acked {
			if o.Index == 0 {
				problem("acknowledged %s %s (%s) carries no raft index", o.Kind, o.Key, o.ID)
				continue
			}
			acked = append(acked, o)
		}
	}

	// Acknowledged writes have distinct indexes, and index order respects
	// real time: a write acknowledged before another started has the
	// smaller index.
	seen := map[uint64]string{}
	for _, o := range acked {
		if other, dup := seen[o.Index]; dup {
			problem("raft index %d acknowledged for two writes: %s and %s", o.Index, other, o.ID)
		}
		seen[o.Index] = o.ID
	}
	byStart := append([]Op(nil), acked...)
	sort.Slice(byStart, func(i, j int) bool { return byStart[i].Start < byStart[j].Start })
	byEnd := append([]Op(nil), acked...)
	sort.Slice(byEnd, func(i, j int) bool { return byEnd[i].End < byEnd[j].End })
	var maxIdx uint64
	var maxOp Op
	j := 0
	for _, o := range byStart {
		for j < len(byEnd) && byEnd[j].End < o.Start {
			if byEnd[j].Index > maxIdx {
				maxIdx, maxOp = byEnd[j].Index, byEnd[j]
			}
			j++
		}
		if o.Index <= maxIdx {
			problem("index order contradicts real time: %s acknowledged at index %d (ended %v) before %s started (%v) and got index %d",
				maxOp.ID, maxOp.Index, maxOp.End, o.ID, o.Start, o.Index)
		}
	}

	// Every visible value comes from a write that may have been applied,
	// to that key and that family.
	for key, st := range finals {
		for f, id := range st {
			if id == "" {
				continue
			}
			o, ok := byID[id]
			fam := string("ab"[f])
			switch {
			case !ok:
				problem("key %s: chaos_%s shows op %q that no client wrote", key, fam, id)
			case o.Result == Failed || o.Result == NotSent:
				problem("key %s: chaos_%s shows %s %s (%s), whose answer was %s: it must not have been applied", key, fam, o.Kind, o.ID, o.Node, o.Result)
			case o.Key != key:
				problem("key %s: chaos_%s shows %s, a write to key %s", key, fam, id, o.Key)
			default:
				if mask, vals := o.writes(); mask&(1<<f) == 0 || vals[f] != id {
					problem("key %s: chaos_%s shows %s, which wrote another family", key, fam, id)
				}
			}
		}
	}

	for _, key := range keys {
		kr := checkKey(key, byKey[key], finals[key])
		rep.Keys = append(rep.Keys, kr)
		if !kr.Explained {
			problem("key %s: final state %s is not explained by the acknowledged writes in index order plus any unknown-outcome writes (last acknowledged: %s)",
				key, fmtState(kr.Final), describeLast(kr.LastAcked))
		}
		for _, l := range kr.Lost {
			rep.Lost++
			problem("key %s: acknowledged %s lost: %s via %s at index %d (%v-%v), final state %s",
				key, l.ID, l.describe(), l.Node, l.Index, l.Start, l.End, fmtState(kr.Final))
		}
	}
	return rep
}

func fmtState(s State) string {
	f := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	return fmt.Sprintf("(a=%s b=%s)", f(s[0]), f(s[1]))
}

func describeLast(l []*Op) string {
	var parts []string
	for f, o := range l {
		if o == nil {
			parts = append(parts, fmt.Sprintf("%c: none", "ab"[f]))
			continue
		}
		parts = append(parts, fmt.Sprintf("%c: %s %s@%d", "ab"[f], o.Kind, o.ID, o.Index))
	}
	return strings.Join(parts, ", ")
}

// termLeaders checks (4): every term has at most one leader. It returns a
// problem per term that had several.
func termLeaders(seen map[uint64]map[string]string) []string {
	var terms []uint64
	for term := range seen {
		terms = append(terms, term)
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i] < terms[j] })
	var problems []string
	for _, term := range terms {
		if len(seen[term]) > 1 {
			var who []string
			for leader, by := range seen[term] {
				who = append(who, leader+" (seen by "+by+")")
			}
			sort.Strings(who)
			problems = append(problems, fmt.Sprintf("term %d has %d leaders: %s", term, len(who), strings.Join(who, ", ")))
		}
	}
	return problems
}
