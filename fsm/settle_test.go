package fsm

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// TestIncrementalOrderEqualsFullSort drives random unchecked pushes,
// deletes and wipes (duplicate series, grouping keys whose label values
// tie, value-only changes, label changes) and compares the incrementally
// kept exposition, settled at random moments, with the one a restored
// copy builds with a full sort, and with an FSM that settles after every
// command: the order must not depend on when changes are settled.
func TestIncrementalOrderEqualsFullSort(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	lazy := &applier{t: t, s: newTestFSM()}
	eager := &applier{t: t, s: newTestFSM()}
	compared := 0
	for step := 0; step < 4000; step++ {
		c := randomOrderCommand(r, int64(step+1)*1e9, false)
		applyToAll(t, c, lazy, eager)
		eager.s.Families()
		if r.Intn(25) != 0 {
			continue
		}
		compared++
		checkFullSortOrder(t, lazy.s)
		got := render(t, lazy.s)
		if want := render(t, clone(t, lazy.s)); got != want {
			t.Fatalf("step %d: incremental exposition differs from a full sort\n--- incremental\n%s\n--- full sort\n%s", step, got, want)
		}
		if e := render(t, eager.s); got != e {
			t.Fatalf("step %d: settling after every command gives another order\n--- lazy\n%s\n--- eager\n%s", step, got, e)
		}
	}
	if compared < 100 {
		t.Fatalf("only %d comparisons", compared)
	}
}

// orderTestKeys are the grouping keys of randomOrderCommand: keys whose
// label values tie, and many instances.
var orderTestKeys = func() []map[string]string {
	keys := []map[string]string{
		{"job": "j"}, {"job": "j", "a": "1"}, {"job": "j", "b": "1"}, {"job": "j", "a": "2"}, {"job": "k", "b": "1"}, {"job": "j", "a": "1", "b": "1"},
	}
	for i := 0; i < 40; i++ {
		keys = append(keys, map[string]string{"job": "many", "instance": fmt.Sprint(i)})
	}
	return keys
}()

// randomOrderCommand is a random unchecked push (duplicate series, value
// and label changes), delete or, rarely, wipe at time ts, to one of
// orderTestKeys. With help, each family's help names its group, so the
// exposition shows which group's family heads each name.
func randomOrderCommand(r *rand.Rand, ts int64, help bool) *Command {
	labels := maps.Clone(orderTestKeys[r.Intn(len(orderTestKeys))])
	switch n := r.Intn(100); {
	case n < 4:
		return &Command{Op: OpDelete, Labels: labels, TimeUnixNano: ts}
	case n == 4 && r.Intn(10) == 0:
		return &Command{Op: OpWipe, TimeUnixNano: ts}
	}
	c := &Command{Op: []Op{OpPut, OpPost}[r.Intn(2)], Labels: labels, TimeUnixNano: ts, Unchecked: true}
	for _, name := range []string{"a", "b", "c"} {
		if r.Intn(3) == 0 {
			continue
		}
		mf := &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum()}
		if help {
			mf.Help = proto.String(fmt.Sprintf("pushed to %v", labels))
		}
		for m := r.Intn(3); m >= 0; m-- {
			mf.Metric = append(mf.Metric, randomGauge(r, true))
		}
		c.Families = append(c.Families, mf)
	}
	return c
}

// TestCommandsWhileSettling applies random commands while an exposition
// settles the changes it took, from another goroutine, which the settle
// must not keep waiting (it runs without the lock Apply takes). That
// exposition shows the state the changes were taken from; the next one
// shows the state after the commands, in the order a full sort gives, with
// each name's help from the group with the smallest key. Commands that
// change a group again, delete it or wipe everything meet changes of the
// same groups being settled.
func TestCommandsWhileSettling(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	live := &applier{t: t, s: newTestFSM()}
	ref := &applier{t: t, s: newTestFSM()}
	ts := int64(0)
	next := func() *Command {
		ts += 1e9
		return randomOrderCommand(r, ts, true)
	}
	settledWhileApplying := 0
	for round := 0; round < 300; round++ {
		for n := r.Intn(20); n >= 0; n-- {
			applyToAll(t, next(), live, ref)
		}
		before := render(t, ref.s)
		var during [][]byte
		for n := r.Intn(6); n > 0; n-- {
			b, err := next().Encode()
			if err != nil {
				t.Fatal(err)
			}
			during = append(during, b)
		}
		live.s.beforeSettle = func() {
			live.s.beforeSettle = nil
			applied := make(chan struct{})
			go func() {
				defer close(applied)
				for _, b := range during {
					live.applyEncoded(b)
				}
			}()
			select {
			case <-applied:
				settledWhileApplying++
			case <-time.After(30 * time.Second):
				t.Fatal("commands applied while settling did not complete in 30s: they wait for the settle")
			}
		}
		if got := render(t, live.s); got != before {
			t.Fatalf("round %d: the exposition taken before the commands shows another state\n--- got\n%s\n--- want\n%s", round, got, before)
		}
		live.s.beforeSettle = nil
		for _, b := range during {
			ref.applyEncoded(b)
		}
		got, want := render(t, live.s), render(t, ref.s)
		if got != want {
			t.Fatalf("round %d: the exposition after the commands differs\n--- got\n%s\n--- want\n%s", round, got, want)
		}
		if full := render(t, clone(t, live.s)); got != full {
			t.Fatalf("round %d: the exposition differs from a full sort\n--- got\n%s\n--- full sort\n%s", round, got, full)
		}
		checkFullSortOrder(t, live.s)
	}
	if settledWhileApplying < 100 {
		t.Fatalf("commands were applied while settling in only %d rounds", settledWhileApplying)
	}
}

// TestParallelSettleEqualsSequential orders a store large enough for
// settleAll to work on every core (a first exposition and a restore) and
// compares it with the same store ordered in small batches, one name after
// the other: duplicate series and tied label values included.
func TestParallelSettleEqualsSequential(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // settleAll's workers, however many cores run the test
	r := rand.New(rand.NewSource(11))
	lazy := &applier{t: t, s: newTestFSM()}
	eager := &applier{t: t, s: newTestFSM()}
	pending := 0
	for g := 0; g < 9000; g++ {
		c := randomInstancePush(r, g, 7, false)
		for _, mf := range c.Families {
			pending += len(mf.Metric)
		}
		applyToAll(t, c, lazy, eager)
		if g%50 == 0 {
			eager.s.Families()
		}
	}
	stored := 0
	for _, mf := range lazy.s.Families() { // its first exposition
		stored += len(mf.Metric)
	}
	if stored < parallelSettle {
		t.Fatalf("only %d metrics stored (%d pushed): the parallel path is not taken", stored, pending)
	}
	restored := clone(t, lazy.s)
	want := render(t, eager.s)
	if got := render(t, lazy.s); got != want {
		t.Fatal("the store ordered on every core at its first exposition differs from the one ordered in batches")
	}
	if got := render(t, restored); got != want {
		t.Fatal("the restored store differs from the one ordered in batches")
	}
	checkFullSortOrder(t, lazy.s)
	checkFullSortOrder(t, restored)
}

// TestRestoreInAnyGroupOrder restores the same store from a snapshot in
// key order (as snapshots are written: each name's order and index entry
// are built straight from the groups, name by name on every core) and from
// one with its groups shuffled (through the changed groups, as Apply
// adds them): both expose what the original does, in the order of a full
// sort, and index it as the original's pushes did, duplicate series and
// mixed types of unchecked pushes included; large enough for the work to
// run on every core.
func TestRestoreInAnyGroupOrder(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	r := rand.New(rand.NewSource(13))
	a := &applier{t: t, s: newTestFSM()}
	for g := 0; g < 8000; g++ {
		applyToAll(t, randomInstancePush(r, g, 5, true), a)
	}
	for _, c := range []*Command{
		// The same series from two groups, and a name of two types.
		pushCmd(t, OpPut, t1, "dup{zone=\"b\"} 1\n", "job", "unchecked"),
		pushCmd(t, OpPut, t1, "dup 2\n", "job", "unchecked", "zone", "b"),
		pushCmd(t, OpPut, t1, "# TYPE mixed counter\nmixed 1\n", "job", "m1"),
		pushCmd(t, OpPut, t1, "# TYPE mixed gauge\nmixed 1\n", "job", "m2"),
	} {
		c.Unchecked = true
		a.mustOK(c)
	}
	if a.s.Consistent() {
		t.Fatal("the unchecked pushes stored no inconsistency")
	}
	if a.s.Series() < parallelSettle {
		t.Fatalf("only %d series stored: the restore does not index on every core", a.s.Series())
	}
	// The text format cannot hold a family of two types: compare the rest.
	render := func(t *testing.T, s *FSM) string {
		return renderFamilies(t, slices.DeleteFunc(slices.Clone(s.Families()), func(mf *dto.MetricFamily) bool { return mf.GetName() == "mixed" }))
	}
	want := render(t, a.s)
	sn := a.s.Snapshot()
	shuffled := &Snapshot{groups: slices.Clone(sn.groups), applied: sn.applied}
	r.Shuffle(len(shuffled.groups), func(i, j int) { shuffled.groups[i], shuffled.groups[j] = shuffled.groups[j], shuffled.groups[i] })
	var inOrder bytes.Buffer
	for _, tc := range []struct {
		name  string
		write func(io.Writer) (int64, error)
	}{{"in key order", sn.WriteTo}, {"shuffled", shuffled.writeAsListed}} {
		var buf bytes.Buffer
		if _, err := tc.write(&buf); err != nil {
			t.Fatal(err)
		}
		if inOrder.Len() == 0 {
			inOrder.Write(buf.Bytes())
		} else if bytes.Equal(buf.Bytes(), inOrder.Bytes()) {
			t.Fatalf("%s: the snapshot was written in key order", tc.name)
		}
		s := newTestFSM()
		if err := s.Restore(&buf); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		checkFullSortOrder(t, s)
		if got := render(t, s); got != want {
			t.Fatalf("%s: the restored store exposes something else", tc.name)
		}
		checkSameIndex(t, tc.name, s, a.s)
		if len(s.ix.changed) != 0 {
			t.Fatalf("%s: %d groups have changes pending after the restore", tc.name, len(s.ix.changed))
		}
	}
}

// checkSameIndex compares what got's index holds with want's: per name
// the groups, types, smallest key and number of changes, and the series
// counts, duplicates, mixed names and store errors, which must read the
// same whatever order the groups came in.
func checkSameIndex(t *testing.T, what string, got, want *FSM) {
	t.Helper()
	got.mu.RLock()
	defer got.mu.RUnlock()
	want.mu.RLock()
	defer want.mu.RUnlock()
	if got.series != want.series {
		t.Fatalf("%s: %d series counted, want %d", what, got.series, want.series)
	}
	g, w := got.ix, want.ix
	if !slices.Equal(slices.Sorted(maps.Keys(g.names)), slices.Sorted(maps.Keys(w.names))) {
		t.Fatalf("%s: other names indexed", what)
	}
	for name, we := range w.names {
		ge := g.names[name]
		if ge.holders != we.holders || ge.holders != len(holding(got, name)) || !maps.Equal(ge.empty, we.empty) ||
			!maps.Equal(ge.types, we.types) || ge.minKey != we.minKey || ge.version != uint64(ge.holders) {
			t.Fatalf("%s: the entry of %s differs: types %v, smallest key %q, %d changes for %d groups; want %v, %q, %d groups",
				what, name, ge.types, ge.minKey, ge.version, ge.holders, we.types, we.minKey, we.holders)
		}
	}
	if !maps.Equal(hashSetMap(g.series), hashSetMap(w.series)) {
		t.Fatalf("%s: other series counts (%d hashes, want %d)", what, g.series.Len(), w.series.Len())
	}
	if !maps.Equal(g.dups, w.dups) || !maps.Equal(g.mixed, w.mixed) {
		t.Fatalf("%s: other inconsistencies: %d duplicates, %v mixed; want %d, %v", what, len(g.dups), g.mixed, len(w.dups), w.mixed)
	}
	ge, we := g.storeErrors(), w.storeErrors()
	if len(ge) == 0 || fmt.Sprint(ge) != fmt.Sprint(we) {
		t.Fatalf("%s: %d store errors, want the %d of the original, reading the same", what, len(ge), len(we))
	}
}

// holding returns the keys of s's groups holding a family named name, in
// order. Callers hold s.mu.
func holding(s *FSM, name string) []string {
	var keys []string
	for k, g := range s.groups {
		if g.Families.Get(name) != nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// checkFullSortOrder compares every name's settled order with a stable
// sort by compareExposed of all its stored metrics (groups in key order,
// metrics in family order): an order made without the incremental
// machinery, its batching, prefixes or workers. The metrics kept beside
// the order must be its metrics.
func checkFullSortOrder(t *testing.T, s *FSM) {
	t.Helper()
	s.Families()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for name, e := range s.ix.names {
		var want []sortedMetric
		for _, k := range holding(s, name) {
			ms := s.groups[k].Families.Get(name).Metrics()
			for i := range ms {
				want = append(want, sortedMetric{m: &ms[i], key: k})
			}
		}
		slices.SortStableFunc(want, compareExposed)
		if len(want) != len(e.sorted) {
			t.Fatalf("%s: %d metrics in order, %d stored", name, len(e.sorted), len(want))
		}
		if len(e.metrics) != len(e.sorted) {
			t.Fatalf("%s: %d metrics beside an order of %d", name, len(e.metrics), len(e.sorted))
		}
		for i := range want {
			if want[i].m != e.sorted[i].m || want[i].key != e.sorted[i].key {
				t.Fatalf("%s: position %d differs from a full sort", name, i)
			}
			if e.metrics[i] != e.sorted[i].m {
				t.Fatalf("%s: position %d of the metrics beside the order is another metric", name, i)
			}
		}
	}
}

// TestCompareSortKeysAgreesWithCompareLabels checks the shortcut of the
// sort: for label values of every kind (empty, equal starts, prefixes of
// each other, separators' neighbours, zero bytes, multibyte), comparing by
// prefix orders two metrics as compareLabels does.
func TestCompareSortKeysAgreesWithCompareLabels(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	parts := []string{"", "a", "ab", "abc", "abcdefgh", "abcdefghi", "b", "\x00", "a\x00", "\x01", "\xff", "é", "1", "10", "100000", "99999"}
	metric := func() *Metric {
		m := &Metric{}
		for n := 1 + r.Intn(3); n > 0; n-- {
			v := parts[r.Intn(len(parts))]
			if r.Intn(3) == 0 {
				v += parts[r.Intn(len(parts))]
			}
			m.labels = append(m.labels, lp(fmt.Sprint("l", n), v))
		}
		return m
	}
	sign := func(c int) int { return max(-1, min(1, c)) }
	for i := 0; i < 200000; i++ {
		a, b := metric(), metric()
		ms := []orderedMetric{{newOrderKey(a), sortedMetric{m: a, key: "k"}}, {newOrderKey(b), sortedMetric{m: b, key: "k"}}}
		c := compareSortKeys(ms, sortKey{ms[0].orderKey, 0}, sortKey{ms[1].orderKey, 1})
		want := sign(compareLabels(a.labels, b.labels))
		if want == 0 {
			want = -1 // equal labels (and group keys): the first given comes first
		}
		if got := sign(c); got != want {
			t.Fatalf("%v vs %v: by prefix %d, by labels %d", a.labels, b.labels, got, want)
		}
	}
}

// randomGauge is a gauge sample with, at random, a label x of three values
// and (withY) a label y of two: label sets that tie across groups.
func randomGauge(r *rand.Rand, withY bool) *dto.Metric {
	m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(float64(r.Intn(1000)))}}
	if r.Intn(2) == 0 {
		m.Label = append(m.Label, lp("x", fmt.Sprint(r.Intn(3))))
	}
	if withY && r.Intn(4) == 0 {
		m.Label = append(m.Label, lp("y", fmt.Sprint(r.Intn(2))))
	}
	return m
}

// randomInstancePush is unchecked push number g into a large store: a
// group of one of 3,000 instances, every aEvery-th with a grouping label a
// of three values too, of families a, b and c with one to three random
// gauges each (withY: see randomGauge).
func randomInstancePush(r *rand.Rand, g, aEvery int, withY bool) *Command {
	c := &Command{Op: OpPut, Labels: map[string]string{"job": "j", "instance": fmt.Sprint(r.Intn(3000))}, TimeUnixNano: int64(g+1) * 1e9, Unchecked: true}
	if g%aEvery == 0 {
		c.Labels["a"] = fmt.Sprint(r.Intn(3))
	}
	for _, name := range []string{"a", "b", "c"} {
		mf := &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum()}
		for m := r.Intn(3); m >= 0; m-- {
			mf.Metric = append(mf.Metric, randomGauge(r, withY))
		}
		c.Families = append(c.Families, mf)
	}
	return c
}

// applyToAll applies c, unchecked by the test, to every applier at its
// next index.
func applyToAll(t *testing.T, c *Command, all ...*applier) {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		a.applyEncoded(b)
	}
}

// TestStoreErrorsNameTheSecondMetricInKeyOrder: a duplicate series is named
// by its second metric in group key order, whichever group stored it
// first, so every node words the rejection of a push the same.
func TestStoreErrorsNameTheSecondMetricInKeyOrder(t *testing.T) {
	plain := pushCmd(t, OpPut, t1, "dup{zone=\"b\"} 1\n", "job", "u")
	zoned := pushCmd(t, OpPut, t1, "dup 2\n", "job", "u", "zone", "b")
	plain.Unchecked, zoned.Unchecked = true, true
	for _, order := range [][]*Command{{plain, zoned}, {zoned, plain}} {
		a := &applier{t: t, s: newTestFSM()}
		for _, c := range order {
			a.mustOK(c)
		}
		// The key of the zoned group sorts after the plain one's: its
		// metric, of value 2, is the second. (The text format of a
		// message may put a space after the colon.)
		r := a.apply(pushCmd(t, OpPut, t2, "other 1\n", "job", "v"))
		if r.Err == nil || !regexp.MustCompile(`was collected before`).MatchString(r.Err.Error()) ||
			!regexp.MustCompile(`value:\s*2\b`).MatchString(r.Err.Error()) {
			t.Fatalf("pushed in the order %v: %v, want the duplicate of value 2 named", order[0].Labels, r.Err)
		}
	}
}

// TestSeriesStoredThriceIsCountedThrice stores one series three times
// (unchecked: twice in one family, once in another group) and takes the
// copies away one by one: the store reports one error per copy beyond the
// first, a checked push of the series is refused while any copy is left
// beside the pushing group's, and the store is consistent once one copy is
// left.
func TestSeriesStoredThriceIsCountedThrice(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	twice := pushCmd(t, OpPut, t1, "dup{zone=\"b\"} 1\ndup{zone=\"b\"} 3\n", "job", "u")
	zoned := pushCmd(t, OpPut, t1, "dup 2\n", "job", "u", "zone", "b")
	twice.Unchecked, zoned.Unchecked = true, true
	a.mustOK(twice)
	a.mustOK(zoned)
	collected := regexp.MustCompile(`was collected before`)
	errorsNow := func() int {
		a.s.mu.RLock()
		defer a.s.mu.RUnlock()
		return len(a.s.ix.storeErrors())
	}
	if n := errorsNow(); n != 2 || a.s.Consistent() {
		t.Fatalf("three copies: %d store errors, want 2", n)
	}
	if r := a.apply(pushCmd(t, OpPut, t2, "other 1\n", "job", "v")); r.Err == nil || len(collected.FindAllString(r.Err.Error(), -1)) != 2 {
		t.Fatalf("a push beside three copies: %v, want both extra copies named", r.Err)
	}
	// The family holding two copies becomes one: two copies left (a
	// checked push is refused while the store stays inconsistent).
	once := pushCmd(t, OpPut, t2, "dup{zone=\"b\"} 1\n", "job", "u")
	once.Unchecked = true
	a.mustOK(once)
	if n := errorsNow(); n != 1 {
		t.Fatalf("two copies: %d store errors, want 1", n)
	}
	a.mustOK(pushCmd(t, OpDelete, t3, "", "job", "u", "zone", "b"))
	if n := errorsNow(); n != 0 || !a.s.Consistent() {
		t.Fatalf("one copy: %d store errors, want none", n)
	}
	if r := a.apply(pushCmd(t, OpPut, t3, "dup 4\n", "job", "u", "zone", "b")); r.Err == nil || !collected.MatchString(r.Err.Error()) {
		t.Fatalf("a checked push of the one stored series: %v, want it refused", r.Err)
	}
}

// TestAnUndoneTrialKeepsTheNamesItTookAway: while the store is
// inconsistent, a checked push is tried against the whole store and undone
// when it does not mend it. A name whose only holder the trial replaced
// loses its index entry meanwhile, exposition order and all, and gets a
// new one when the holder is put back; the exposition must still show it,
// both when the name was ordered before the trial and when it was not.
func TestAnUndoneTrialKeepsTheNamesItTookAway(t *testing.T) {
	for _, exposedBefore := range []bool{true, false} {
		a := &applier{t: t, s: newTestFSM()}
		a.mustOK(pushCmd(t, OpPut, t1, "only_here 1\n", "job", "a"))
		a.mustOK(pushCmd(t, OpPut, t1, "# TYPE m counter\nm 1\n", "job", "b"))
		mixed := pushCmd(t, OpPut, t1, "# TYPE m gauge\nm 1\n", "job", "c")
		mixed.Unchecked = true
		a.mustOK(mixed)
		if exposedBefore {
			a.s.Exposed()
		}
		// Group a without only_here; m still of mixed types: rejected.
		a.mustFail(pushCmd(t, OpPut, t2, "other 1\n", "job", "a"), "is not a")
		got, want := exposedText(a.s), exposedText(clone(t, a.s))
		if got != want {
			t.Fatalf("exposed before the trial: %v: the exposition differs from the same store restored\n--- got\n%s\n--- restored\n%s", exposedBefore, got, want)
		}
		if !strings.Contains(got, "only_here {") {
			t.Fatalf("only_here is not stored:\n%s", got)
		}
	}
}

// exposedText lists the exposition's names and their metrics' labels, in
// order (the text format cannot show a store of mixed types).
func exposedText(s *FSM) string {
	var b strings.Builder
	for _, ef := range s.Exposed() {
		b.WriteString(ef.Name())
		for _, m := range ef.Metrics {
			fmt.Fprintf(&b, " {%s}", m)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
