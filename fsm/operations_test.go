package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// importGroups builds the groups of an upstream store as OpImport carries
// them: families with grouping labels and per-family times.
func importGroups(t *testing.T) []*Group {
	t.Helper()
	src := newTestFSM()
	a := &applier{t: t, s: src}
	a.mustOK(pushCmd(t, OpPut, t1, "# TYPE a counter\n# HELP a help\na{x=\"1\"} 1\n", "job", "j1", "instance", "i"))
	a.mustOK(pushCmd(t, OpPut, t2, "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", "job", "j2"))
	a.mustOK(pushCmd(t, OpPost, t3, "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n", "job", "j2"))
	var out []*Group
	for _, g := range src.Groups() {
		c := &Group{Labels: LabelsOf(g.Labels.Map()), Families: Families{}}
		for _, f := range g.Families {
			c.Families = append(c.Families, NewFamily(proto.Clone(f.MF()).(*dto.MetricFamily), f.TimeUnixNano))
		}
		c.Key = GroupingKey(c.Labels.Map())
		out = append(out, c)
	}
	return out
}

func TestNewCommandsRoundTrip(t *testing.T) {
	var snap bytes.Buffer
	s := newTestFSM()
	(&applier{t: t, s: s}).mustOK(pushCmd(t, OpPut, t1, "a 1\n", "job", "j"))
	if _, err := s.Snapshot().WriteTo(&snap); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Command{
		{Op: OpExpire, TimeUnixNano: t3, CutoffUnixNano: t2, Expire: []map[string]string{{"job": "a"}, {"job": "b", "instance": ""}}},
		{Op: OpExpire, TimeUnixNano: t3, CutoffUnixNano: -5},
		{Op: OpImport, TimeUnixNano: t3, Import: importGroups(t), Source: "file f (sha256 00)"},
		{Op: OpRestore, TimeUnixNano: t3, Snapshot: snap.Bytes()},
	} {
		b, err := c.Encode()
		if err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
		d, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
		if d.Op != c.Op || d.TimeUnixNano != c.TimeUnixNano || d.CutoffUnixNano != c.CutoffUnixNano ||
			len(d.Expire) != len(c.Expire) || len(d.Import) != len(c.Import) || d.Source != c.Source || !bytes.Equal(d.Snapshot, c.Snapshot) {
			t.Fatalf("%s: decoded %+v, want %+v", c.Op, d, c)
		}
		for i := range c.Expire {
			if GroupingKey(c.Expire[i]) != GroupingKey(d.Expire[i]) {
				t.Fatalf("expired group %d differs", i)
			}
		}
		for i, g := range c.Import {
			dg := d.Import[i]
			if dg.Key != g.Key || len(dg.Families) != len(g.Families) {
				t.Fatalf("imported group %d differs", i)
			}
			for _, f := range g.Families {
				n := f.Name()
				if df := dg.Families.Get(n); df.TimeUnixNano != f.TimeUnixNano || !proto.Equal(df.MF(), f.MF()) {
					t.Fatalf("imported family %s differs", n)
				}
			}
		}
		again, err := d.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%s: encoding not stable (%v)", c.Op, err)
		}
	}
}

func TestOldCommandsEncodeAsBefore(t *testing.T) {
	// The new fields must not change the bytes of the existing commands:
	// version 1, op, time, labels, nothing else.
	got, err := (&Command{Op: OpDelete, Labels: map[string]string{"job": "j"}, TimeUnixNano: 5}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	want = protowire.AppendTag(want, cmdFieldVersion, protowire.VarintType)
	want = protowire.AppendVarint(want, 1)
	want = protowire.AppendTag(want, cmdFieldOp, protowire.VarintType)
	want = protowire.AppendVarint(want, uint64(OpDelete))
	want = protowire.AppendTag(want, cmdFieldTime, protowire.VarintType)
	want = protowire.AppendVarint(want, 5)
	want = appendLabels(want, cmdFieldLabel, LabelsOf(map[string]string{"job": "j"}))
	if !bytes.Equal(got, want) {
		t.Fatalf("DELETE encodes as %x, want %x", got, want)
	}
}

func TestNewCommandsRefuseForeignFields(t *testing.T) {
	for name, c := range map[string]*Command{
		"expire with labels":       {Op: OpExpire, Labels: map[string]string{"job": "j"}},
		"put with cutoff":          {Op: OpPut, Labels: map[string]string{"job": "j"}, CutoffUnixNano: 1},
		"delete with expire list":  {Op: OpDelete, Labels: map[string]string{"job": "j"}, Expire: []map[string]string{{"job": "j"}}},
		"wipe with import":         {Op: OpWipe, Import: []*Group{{Labels: LabelsOf(map[string]string{"job": "j"}), Families: Families{}}}},
		"restore with source":      {Op: OpRestore, Source: "x"},
		"import with snapshot":     {Op: OpImport, Snapshot: []byte("x")},
		"restore with families":    {Op: OpRestore, Families: parseText(t, "a 1\n")},
		"expire with unchecked":    {Op: OpExpire, Unchecked: true},
		"import of unknown op":     {Op: 99},
		"delete with expiry":       {Op: OpDelete, Labels: map[string]string{"job": "j"}, ExpireAfter: Expiry{Set: true, After: time.Second}},
		"wipe with pushed-by":      {Op: OpWipe, PushedBy: PushedBy{User: "u"}},
		"put with selectors":       {Op: OpPut, Labels: map[string]string{"job": "j"}, Selectors: []Selector{{{Name: "job", Value: "j"}}}},
		"delete matching labels":   {Op: OpDeleteMatching, Labels: map[string]string{"job": "j"}, Selectors: []Selector{{{Name: "job", Value: "j"}}}},
		"put with restore payload": {Op: OpPut, Labels: map[string]string{"job": "j"}, Snapshot: []byte{1}},
	} {
		if _, err := c.Encode(); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	// Such entries decode, but Validate refuses them, as it does bad
	// label sets in the new lists, and Apply answers with the same verdict
	// and changes nothing.
	good, _ := (&Command{Op: OpExpire, CutoffUnixNano: 1, Expire: []map[string]string{{"job": "j"}}}).Encode()
	noJob := protowire.AppendTag(append([]byte(nil), good...), cmdFieldExpire, protowire.BytesType)
	noJob = protowire.AppendBytes(noJob, appendLabels(nil, 1, LabelsOf(map[string]string{"instance": "i"})))
	withLabel := appendLabels(append([]byte(nil), good...), cmdFieldLabel, LabelsOf(map[string]string{"job": "j"}))
	dupImport, _ := (&Command{Op: OpImport, Import: importGroups(t)[:1]}).Encode()
	var rec []byte
	rec, _ = encodeGroup(rec, importGroups(t)[0])
	dupImport = protowire.AppendTag(dupImport, cmdFieldImport, protowire.BytesType)
	dupImport = protowire.AppendBytes(dupImport, rec)
	for name, b := range map[string][]byte{
		"expired group without job": noJob,
		"expire with labels":        withLabel,
		"import with a group twice": dupImport,
	} {
		c, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := Validate(c); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s: want ErrInvalidCommand, got %v", name, err)
		}
		s := newTestFSM()
		if res := s.Apply(7, b); !errors.Is(res.Err, ErrInvalidCommand) || s.Len() != 0 || s.AppliedIndex() != 7 {
			t.Errorf("%s: Apply gave %v with %d groups at index %d", name, res.Err, s.Len(), s.AppliedIndex())
		}
	}
}

func TestExpireRemovesOnlyGroupsStillOlderThanTheCutoff(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "a 1\n", "job", "old"))
	a.mustOK(pushCmd(t, OpPut, t1, "a 2\n", "job", "repushed"))
	a.mustOK(pushCmd(t, OpPut, t3, "a 3\n", "job", "fresh"))
	// A group created by a rejected push has push_time_seconds 0: its
	// last change (the failure) counts.
	a.apply(&Command{Op: OpPut, Labels: map[string]string{"job": "failed-old"}, Families: parseText(t, "a 4 1000\n"), TimeUnixNano: t1})
	a.apply(&Command{Op: OpPut, Labels: map[string]string{"job": "failed-new"}, Families: parseText(t, "a 5 1000\n"), TimeUnixNano: t3})
	// A later failure does not refresh a group: push_time_seconds counts.
	a.mustOK(pushCmd(t, OpPut, t1, "a 6\n", "job", "ok-then-failed"))
	a.apply(&Command{Op: OpPut, Labels: map[string]string{"job": "ok-then-failed"}, Families: parseText(t, "a 7 1000\n"), TimeUnixNano: t3})

	cutoff := t2
	cands := a.s.ExpiryCandidates(t3, cutoff, 0)
	var got []string
	for _, l := range cands {
		got = append(got, l["job"])
	}
	if strings.Join(got, ",") != "failed-old,ok-then-failed,old,repushed" {
		t.Fatalf("candidates %v", got)
	}
	// A limit keeps the first ones in grouping-key order, so batches of
	// expiry commands walk the store in one order.
	if c := a.s.ExpiryCandidates(t3, cutoff, 2); len(c) != 2 || c[0]["job"] != "failed-old" || c[1]["job"] != "ok-then-failed" {
		t.Fatalf("limited candidates: %v", c)
	}
	// "repushed" is pushed again after the leader made its list.
	a.mustOK(pushCmd(t, OpPut, t3, "a 8\n", "job", "repushed"))
	cands = append(cands, map[string]string{"job": "never-existed"}, map[string]string{"job": "fresh"})
	a.mustOK(&Command{Op: OpExpire, TimeUnixNano: t3, CutoffUnixNano: cutoff, Expire: cands})
	var left []string
	for _, g := range a.s.Groups() {
		left = append(left, g.Labels.Get("job"))
	}
	if strings.Join(left, ",") != "failed-new,fresh,repushed" {
		t.Fatalf("left after expiry: %v", left)
	}
	if a.s.AppliedIndex() != a.index {
		t.Fatal("applied index not advanced")
	}
}

func TestImportOnceIntoEmptyStore(t *testing.T) {
	groups := importGroups(t)
	// What the import should produce: the same groups pushed normally.
	want := newTestFSM()
	w := &applier{t: t, s: want}
	w.mustOK(pushCmd(t, OpPut, t1, "# TYPE a counter\n# HELP a help\na{x=\"1\"} 1\n", "job", "j1", "instance", "i"))
	w.mustOK(pushCmd(t, OpPut, t2, "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", "job", "j2"))
	w.mustOK(pushCmd(t, OpPost, t3, "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n", "job", "j2"))

	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(&Command{Op: OpImport, TimeUnixNano: t3, Import: groups, Source: "f"})
	if got, w := render(t, a.s), render(t, want); got != w {
		t.Fatalf("imported exposition:\n%s\nwant:\n%s", got, w)
	}
	for _, g := range want.Groups() {
		ig := a.s.Group(g.Labels.Map())
		for _, f := range g.Families {
			n := f.Name()
			if ig.Families.Get(n).TimeUnixNano != f.TimeUnixNano {
				t.Fatalf("family %s of %v: time %d, want %d", n, g.Labels, ig.Families.Get(n).TimeUnixNano, f.TimeUnixNano)
			}
		}
	}
	r := a.s.Imported()
	if r == nil || r.Groups != 2 || r.Source != "f" || r.TimeUnixNano != t3 {
		t.Fatalf("import record %+v", r)
	}
	// The indexes work on imported groups: a conflicting push is refused.
	a.mustFail(pushCmd(t, OpPut, t3, "# TYPE a gauge\na 1\n", "job", "other"), "is not a COUNTER")

	// A second import is refused, also after a wipe: the record stays.
	before := render(t, a.s)
	a.mustFail(&Command{Op: OpImport, TimeUnixNano: t3, Import: importGroups(t), Source: "g"}, "already imported 2 groups from f")
	if render(t, a.s) != before {
		t.Fatal("refused import changed the state")
	}
	a.mustOK(&Command{Op: OpWipe, TimeUnixNano: t3})
	a.mustFail(&Command{Op: OpImport, TimeUnixNano: t3, Import: importGroups(t), Source: "g"}, "already imported")
	if a.s.Len() != 0 {
		t.Fatal("refused import after wipe changed the state")
	}

	// Into a store that has groups: refused, unchanged.
	b := &applier{t: t, s: newTestFSM()}
	b.mustOK(pushCmd(t, OpPut, t1, "x 1\n", "job", "x"))
	res := b.apply(&Command{Op: OpImport, TimeUnixNano: t3, Import: importGroups(t)})
	if !errors.Is(res.Err, ErrImportRefused) || !strings.Contains(res.Err.Error(), "not empty (1 groups)") {
		t.Fatalf("import into non-empty store: %v", res.Err)
	}
	if b.s.Len() != 1 || b.s.Imported() != nil {
		t.Fatal("refused import changed the state")
	}
}

func TestSnapshotKeepsImportRecord(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "a 1\n", "job", "j"))
	var v1 bytes.Buffer
	if _, err := a.s.Snapshot().WriteTo(&v1); err != nil {
		t.Fatal(err)
	}
	if v1.Bytes()[len(snapshotMagic)] != snapshotVersion {
		t.Fatal("a state without import record must keep snapshot version 1")
	}

	b := &applier{t: t, s: newTestFSM()}
	b.mustOK(&Command{Op: OpImport, TimeUnixNano: t2, Import: importGroups(t), Source: "file"})
	b.mustOK(&Command{Op: OpWipe, TimeUnixNano: t3})
	b.mustOK(pushCmd(t, OpPut, t3, "# TYPE c counter\nc 1\n", "job", "after"))
	var v2 bytes.Buffer
	if _, err := b.s.Snapshot().WriteTo(&v2); err != nil {
		t.Fatal(err)
	}
	if v2.Bytes()[len(snapshotMagic)] != snapshotVersionV2 {
		t.Fatal("import record needs snapshot version 2")
	}
	info, err := ValidateSnapshot(v2.Bytes())
	if err != nil || info.Groups != 1 || info.AppliedIndex != 3 || info.Imported == nil || info.Imported.Source != "file" {
		t.Fatalf("validate: %+v %v", info, err)
	}
	r := newTestFSM()
	if err := r.Restore(bytes.NewReader(v2.Bytes())); err != nil {
		t.Fatal(err)
	}
	if rec := r.Imported(); rec == nil || *rec != *b.s.Imported() {
		t.Fatalf("restored import record %+v, want %+v", rec, b.s.Imported())
	}
	if render(t, r) != render(t, b.s) {
		t.Fatal("restored state differs")
	}
	var again bytes.Buffer
	if _, err := r.Snapshot().WriteTo(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), v2.Bytes()) {
		t.Fatal("snapshot of the restored state differs")
	}
	// Truncating the record or flipping a bit in it is detected.
	for _, bad := range [][]byte{v2.Bytes()[:v2.Len()-6], append(append([]byte(nil), v2.Bytes()[:v2.Len()-8]...), 0xff, 0, 0, 0, 0, 0, 0, 0)} {
		if _, err := ValidateSnapshot(bad); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("corrupt v2 snapshot: %v", err)
		}
	}
}

func TestRestoreCommandReplacesStateThroughTheLog(t *testing.T) {
	src := &applier{t: t, s: newTestFSM()}
	src.mustOK(pushCmd(t, OpPut, t1, "# TYPE a counter\na 1\n", "job", "backup1"))
	src.mustOK(pushCmd(t, OpPut, t2, "b 2\n", "job", "backup2"))
	var snap bytes.Buffer
	if _, err := src.s.Snapshot().WriteTo(&snap); err != nil {
		t.Fatal(err)
	}

	// Two nodes apply the same log: identical results.
	var nodes []*applier
	for i := 0; i < 2; i++ {
		a := &applier{t: t, s: newTestFSM()}
		a.mustOK(pushCmd(t, OpPut, t1, "# TYPE a gauge\na 9\n", "job", "current"))
		a.mustOK(pushCmd(t, OpPut, t1, "x 1\n", "job", "x"))
		a.mustOK(&Command{Op: OpRestore, TimeUnixNano: t3, Snapshot: snap.Bytes()})
		nodes = append(nodes, a)
	}
	for _, a := range nodes {
		if got, want := render(t, a.s), render(t, src.s); got != want {
			t.Fatalf("after restore:\n%s\nwant:\n%s", got, want)
		}
		if a.s.AppliedIndex() != 3 {
			t.Fatalf("applied index %d after restore at log index 3, want 3", a.s.AppliedIndex())
		}
		// The restored indexes work.
		a.mustFail(pushCmd(t, OpPut, t3, "# TYPE a gauge\na 1\n", "job", "y"), "is not a COUNTER")
	}
	var s0, s1 bytes.Buffer
	_, _ = nodes[0].s.Snapshot().WriteTo(&s0)
	_, _ = nodes[1].s.Snapshot().WriteTo(&s1)
	if !bytes.Equal(s0.Bytes(), s1.Bytes()) {
		t.Fatal("nodes differ after the same log")
	}

	// A corrupt snapshot in the log changes nothing (and never panics).
	before := render(t, nodes[0].s)
	bad := append([]byte(nil), snap.Bytes()...)
	bad[len(bad)/2] ^= 0x10
	res := nodes[0].apply(&Command{Op: OpRestore, TimeUnixNano: t3, Snapshot: bad})
	if !errors.Is(res.Err, ErrRestoreRefused) {
		t.Fatalf("corrupt restore: %v", res.Err)
	}
	if render(t, nodes[0].s) != before {
		t.Fatal("corrupt restore changed the state")
	}
	if _, err := ValidateSnapshot(bad); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("validate corrupt: %v", err)
	}
}

func TestCheckSnapshotRefusesTrailingData(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "a 1\n", "job", "j"))
	snap := snapshotBytes(t, a.s.Snapshot())
	if info, err := CheckSnapshot(bytes.NewReader(snap)); err != nil || info.Groups != 1 || info.AppliedIndex != 1 {
		t.Fatalf("%+v %v", info, err)
	}
	if _, err := ValidateSnapshot(append(snap, 0)); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("trailing byte: %v", err)
	}
}
