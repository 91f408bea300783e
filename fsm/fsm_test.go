package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

const t1, t2, t3 = int64(1_700_000_000_000_000_000), int64(1_700_000_001_500_000_000), int64(1_700_000_002_000_000_000)

func TestPutReplacesGroupAndStampsPushTime(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "a 1\nb 2\n", "job", "j", "instance", "i"))
	a.mustOK(pushCmd(t, OpPut, t2, "# TYPE c counter\nc 3\n", "job", "j", "instance", "i"))
	want := `# TYPE c counter
c{instance="i",job="j"} 3
# HELP push_failure_time_seconds Last Unix time when changing this group in the Pushgateway failed.
# TYPE push_failure_time_seconds gauge
push_failure_time_seconds{instance="i",job="j"} 0
# HELP push_time_seconds Last Unix time when changing this group in the Pushgateway succeeded.
# TYPE push_time_seconds gauge
push_time_seconds{instance="i",job="j"} 1.7000000015e+09
`
	if got := render(t, a.s); got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
	g := a.s.Group(map[string]string{"job": "j", "instance": "i"})
	if g.Families.Get("c").TimeUnixNano != t2 || g.Families.Get(PushFailureTimeMetricName).TimeUnixNano != t1 {
		t.Fatalf("family times: c=%d failure=%d", g.Families.Get("c").TimeUnixNano, g.Families.Get(PushFailureTimeMetricName).TimeUnixNano)
	}
}

func TestPostMergesByMetricName(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPost, t1, "a 1\nb 2\n", "job", "j"))
	a.mustOK(pushCmd(t, OpPost, t2, "a 10\nc 3\n", "job", "j"))
	g := a.s.Group(map[string]string{"job": "j"})
	got := map[string]float64{}
	for _, n := range []string{"a", "b", "c"} {
		f := g.Families.Get(n)
		if f == nil {
			t.Fatalf("family %s missing", n)
		}
		got[n] = f.Metrics()[0].Proto().GetUntyped().GetValue()
	}
	if got["a"] != 10 || got["b"] != 2 || got["c"] != 3 {
		t.Fatalf("values after POST merge: %v", got)
	}
	if g.Families.Get("b").TimeUnixNano != t1 || g.Families.Get("a").TimeUnixNano != t2 {
		t.Fatal("untouched family must keep its time, replaced one gets the new time")
	}
}

func TestEmptyPutKeepsGroupWithPushTime(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "a 1\n", "job", "j"))
	a.mustOK(&Command{Op: OpPut, Labels: map[string]string{"job": "j"}, TimeUnixNano: t2})
	g := a.s.Group(map[string]string{"job": "j"})
	if g == nil || len(g.Families) != 2 || g.Families.Get(PushTimeMetricName) == nil || g.Families.Get(PushFailureTimeMetricName) == nil {
		t.Fatalf("group after empty PUT: %+v", g)
	}
	if v := g.Families.Get(PushTimeMetricName).GaugeValue(); v != float64(t2)/1e9 {
		t.Fatalf("push_time_seconds = %v", v)
	}
}

func TestDeleteAndWipe(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "a 1\n", "job", "j1"))
	a.mustOK(pushCmd(t, OpPut, t1, "a 2\n", "job", "j2"))
	a.mustOK(pushCmd(t, OpPut, t1, "a 3\n", "job", "j3"))
	a.mustOK(&Command{Op: OpDelete, Labels: map[string]string{"job": "j1"}, TimeUnixNano: t2})
	a.mustOK(&Command{Op: OpDelete, Labels: map[string]string{"job": "nope"}, TimeUnixNano: t2})
	if n := a.s.Len(); n != 2 {
		t.Fatalf("after delete: %d groups", n)
	}
	// A deleted series may be pushed again by another group without conflict.
	a.mustOK(pushCmd(t, OpPut, t2, "a{job=\"x\"} 1\n", "job", "j1"))
	a.mustOK(&Command{Op: OpWipe, TimeUnixNano: t3})
	if n := a.s.Len(); n != 0 || len(a.s.Families()) != 0 || a.s.ix.series.Len() != 0 || len(a.s.ix.names) != 0 {
		t.Fatalf("after wipe: %d groups, %d families, index %d/%d", n, len(a.s.Families()), a.s.ix.series.Len(), len(a.s.ix.names))
	}
}

func TestGroupingLabelsOverridePushedLabels(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, `m{job="other",instance="x",zone="z"} 1`+"\n", "job", "j", "a", "b"))
	want := `m{a="b",instance="x",job="j",zone="z"} 1`
	if got := render(t, a.s); !strings.Contains(got, want+"\n") {
		t.Fatalf("exposition lacks %s:\n%s", want, got)
	}
	a.mustOK(pushCmd(t, OpPut, t1, `n{instance="x"} 1`+"\n", "job", "j", "instance", "i"))
	if got := render(t, a.s); !strings.Contains(got, `n{instance="i",job="j"} 1`) {
		t.Fatalf("grouping instance must win:\n%s", got)
	}
}

func TestTimestampsRejectedAndFailureRecorded(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "a 1\n", "job", "j"))
	c := pushCmd(t, OpPut, t2, "a 1 1234\n", "job", "j")
	r := a.apply(c)
	if !errors.Is(r.Err, ErrTimestamp) {
		t.Fatalf("want ErrTimestamp, got %v", r.Err)
	}
	g := a.s.Group(map[string]string{"job": "j"})
	if g.LastPushSuccess() {
		t.Fatal("last push must be marked failed")
	}
	if v := g.Families.Get(PushFailureTimeMetricName).GaugeValue(); v != float64(t2)/1e9 {
		t.Fatalf("push_failure_time_seconds = %v", v)
	}
	if v := g.Families.Get("a").Metrics()[0].Proto().GetUntyped().GetValue(); v != 1 {
		t.Fatal("rejected push changed the metrics")
	}
	// Timestamps are rejected even with the check off, as upstream.
	c = pushCmd(t, OpPut, t3, "a 1 1234\n", "job", "j")
	c.Unchecked = true
	if r := a.apply(c); !errors.Is(r.Err, ErrTimestamp) {
		t.Fatalf("unchecked: want ErrTimestamp, got %v", r.Err)
	}
}

func TestFailedPushCreatesNewGroupLikeUpstream(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "# TYPE a counter\na 1\n", "job", "j1"))
	a.mustFail(pushCmd(t, OpPut, t2, "# TYPE a gauge\na 1\n", "job", "j2"), `is not a COUNTER`)
	g := a.s.Group(map[string]string{"job": "j2"})
	if g == nil {
		t.Fatal("upstream creates the group of a rejected push")
	}
	if len(g.Families) != 2 || g.Families.Get(PushTimeMetricName).GaugeValue() != 0 || g.Families.Get(PushFailureTimeMetricName).GaugeValue() != float64(t2)/1e9 {
		t.Fatalf("rejected new group: %+v", g.Families)
	}
	// A later good push keeps the failure time but marks success.
	a.mustOK(pushCmd(t, OpPut, t3, "# TYPE a counter\na 2\n", "job", "j2"))
	g = a.s.Group(map[string]string{"job": "j2"})
	if !g.LastPushSuccess() || g.Families.Get(PushFailureTimeMetricName).GaugeValue() != float64(t2)/1e9 {
		t.Fatal("successful push after a failure must keep push_failure_time_seconds and be successful")
	}
}

func TestConsistencyFailures(t *testing.T) {
	cases := []struct {
		name   string
		setup  []*Command
		push   *Command
		substr string
	}{
		{
			name:   "type differs from another group",
			setup:  []*Command{pushCmd(t, OpPut, t1, "# TYPE m counter\nm 1\n", "job", "a")},
			push:   pushCmd(t, OpPut, t2, "# TYPE m gauge\nm 1\n", "job", "b"),
			substr: `collected metric "m" {`,
		},
		{
			name:   "type differs from a self-metric",
			push:   pushCmd(t, OpPut, t2, "# TYPE go_goroutines counter\ngo_goroutines 1\n", "job", "b"),
			substr: "gathered metric family go_goroutines has type COUNTER but should have GAUGE",
		},
		{
			name:   "series collides with another group's",
			setup:  []*Command{pushCmd(t, OpPut, t1, "m 1\n", "job", "a", "instance", "x")},
			push:   pushCmd(t, OpPut, t2, `m{instance="x"} 2`+"\n", "job", "a"),
			substr: "was collected before with the same name and label values",
		},
		{
			name:   "push_time_seconds collides when instance is empty in one key only",
			setup:  []*Command{pushCmd(t, OpPut, t1, "m 1\n", "job", "a")},
			push:   pushCmd(t, OpPut, t2, "n 2\n", "job", "a", "instance", ""),
			substr: `* collected metric "push_time_seconds" {`,
		},
		{
			name:   "histogram collides with existing _count",
			setup:  []*Command{pushCmd(t, OpPut, t1, "h_count 1\n", "job", "a")},
			push:   pushCmd(t, OpPut, t2, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "job", "b"),
			substr: `collected histogram or summary named "h" collides with previously collected metric named "h_count"`,
		},
		{
			name:   "_bucket collides with existing histogram",
			setup:  []*Command{pushCmd(t, OpPut, t1, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "job", "a")},
			push:   pushCmd(t, OpPut, t2, "h_bucket 1\n", "job", "b"),
			substr: `collected metric named "h_bucket" collides with previously collected histogram named "h"`,
		},
		{
			name:   "_sum collides with existing summary",
			setup:  []*Command{pushCmd(t, OpPut, t1, "# TYPE s summary\ns_sum 1\ns_count 1\n", "job", "a")},
			push:   pushCmd(t, OpPut, t2, "s_sum 1\n", "job", "b"),
			substr: `collected metric named "s_sum" collides with previously collected summary named "s"`,
		},
		{
			name:   "_count collides with a self-metric summary",
			push:   pushCmd(t, OpPut, t2, "go_gc_duration_seconds_count 1\n", "job", "b"),
			substr: `collides with previously collected summary named "go_gc_duration_seconds"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := &applier{t: t, s: newTestFSM()}
			for _, c := range tc.setup {
				a.mustOK(c)
			}
			before := render(t, a.s)
			a.mustFail(tc.push, tc.substr)
			// Only push_failure_time_seconds (and a zero push_time_seconds
			// for a new group) may change.
			after := render(t, a.s)
			for _, line := range strings.Split(before, "\n") {
				if strings.HasPrefix(line, "push_") || strings.HasPrefix(line, "# ") {
					continue
				}
				if !strings.Contains(after, line) {
					t.Fatalf("rejected push changed %q:\n%s", line, after)
				}
			}
		})
	}
}

// metricFamily builds a family from parts for protobuf-only shapes.
func metricFamily(name string, typ dto.MetricType, ms ...*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum(), Metric: ms}
}

func lp(n, v string) *dto.LabelPair {
	return &dto.LabelPair{Name: proto.String(n), Value: proto.String(v)}
}

func TestMetricLevelFailures(t *testing.T) {
	gauge := func(v float64, labels ...*dto.LabelPair) *dto.Metric {
		return &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: proto.Float64(v)}}
	}
	cases := []struct {
		name   string
		mf     *dto.MetricFamily
		substr string
	}{
		{"duplicate series in one push", metricFamily("m", dto.MetricType_GAUGE, gauge(1, lp("a", "x")), gauge(2, lp("a", "x"))), "was collected before with the same name and label values"},
		{"metric of the wrong type", metricFamily("m", dto.MetricType_COUNTER, gauge(1)), "is not a COUNTER"},
		{"duplicate label names", metricFamily("m", dto.MetricType_GAUGE, gauge(1, lp("a", "x"), lp("a", "y"))), "has two or more labels with the same name: a"},
		{"reserved label name", metricFamily("m", dto.MetricType_GAUGE, gauge(1, lp("__x", "y"))), "has a label with an invalid name: __x"},
		// client_golang reports an empty first label name as a duplicate; so does upstream.
		{"empty label name", metricFamily("m", dto.MetricType_GAUGE, gauge(1, lp("", "y"))), "has two or more labels with the same name: "},
		{"label value not utf8", metricFamily("m", dto.MetricType_GAUGE, gauge(1, lp("a", "\xff"))), `has a label named "a" whose value is not utf8`},
		{"summary with quantile label", metricFamily("s", dto.MetricType_SUMMARY, &dto.Metric{Label: []*dto.LabelPair{lp("quantile", "0.5")}, Summary: &dto.Summary{}}), `must not have an explicit "quantile" label`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := &applier{t: t, s: newTestFSM()}
			a.mustFail(&Command{Op: OpPut, Labels: map[string]string{"job": "j"}, Families: []*dto.MetricFamily{tc.mf}, TimeUnixNano: t1}, tc.substr)
			if a.s.Group(map[string]string{"job": "j"}).Families.Get(tc.mf.GetName()) != nil {
				t.Fatal("rejected family was stored")
			}
		})
	}
}

func TestMultipleErrorsUseMultiErrorFormat(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "# TYPE x counter\nx 1\n# TYPE y counter\ny 1\n", "job", "a"))
	a.mustFail(pushCmd(t, OpPut, t2, "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\n", "job", "b"), "2 error(s) occurred:\n* collected metric \"x\"")
}

func TestUncheckedPushSkipsConsistencyCheck(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "# TYPE m counter\nm 1\n", "job", "a"))
	c := pushCmd(t, OpPut, t2, "# TYPE m gauge\nm 1\n", "job", "b")
	c.Unchecked = true
	a.mustOK(c)
	if a.s.Len() != 2 {
		t.Fatal("unchecked push not stored")
	}
}

func TestSamePushTwiceIsIdempotent(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	c := pushCmd(t, OpPut, t1, "a{x=\"1\"} 1\na{x=\"2\"} 2\n", "job", "j")
	a.mustOK(c)
	first := render(t, a.s)
	a.mustOK(pushCmd(t, OpPut, t1, "a{x=\"1\"} 1\na{x=\"2\"} 2\n", "job", "j"))
	if got := render(t, a.s); got != first {
		t.Fatalf("replaying a PUT changed the state:\n%s\nvs\n%s", got, first)
	}
	a.mustOK(pushCmd(t, OpPost, t1, "a{x=\"1\"} 1\n", "job", "j"))
	a.mustOK(pushCmd(t, OpPost, t1, "a{x=\"1\"} 1\n", "job", "j"))
}

func TestMergedExpositionOrderAndHelp(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "# HELP m from b\nm{v=\"2\"} 1\n", "job", "b"))
	a.mustOK(pushCmd(t, OpPut, t1, "# HELP m from a\nm{v=\"9\"} 1\n", "job", "a"))
	a.mustOK(pushCmd(t, OpPut, t1, "# TYPE go_goroutines gauge\n# HELP go_goroutines mine\ngo_goroutines 5\n", "job", "c"))
	got := render(t, a.s)
	if !strings.Contains(got, "# HELP m from a\n# TYPE m untyped\nm{instance=\"\",job=\"a\",v=\"9\"} 1\nm{instance=\"\",job=\"b\",v=\"2\"} 1\n") {
		t.Fatalf("merged family m:\n%s", got)
	}
	if !strings.Contains(got, "# HELP go_goroutines Number of goroutines that currently exist.\n") {
		t.Fatalf("reserved family must get the gateway's help:\n%s", got)
	}
}

func TestSameLogSameExpositionOnEveryNode(t *testing.T) {
	log := [][]byte{}
	cmds := []*Command{
		pushCmd(t, OpPut, t1, "# TYPE a counter\na{x=\"1\"} 1\na{x=\"2\"} 2\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", "job", "j1", "instance", "i"),
		pushCmd(t, OpPost, t2, "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n", "job", "j2"),
		pushCmd(t, OpPut, t2, "# TYPE a gauge\na 1\n", "job", "j3"),
		pushCmd(t, OpPut, t3, "# TYPE a counter\na{x=\"3\"} 3\n", "job", "j3"),
		{Op: OpDelete, Labels: map[string]string{"job": "j2"}, TimeUnixNano: t3},
		pushCmd(t, OpPost, t3, "b 1 123\n", "job", "j1", "instance", "i"),
	}
	for _, c := range cmds {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		log = append(log, b)
	}
	var renders []string
	for node := 0; node < 3; node++ {
		s := newTestFSM()
		for i, b := range log {
			s.Apply(uint64(i+1), b)
		}
		renders = append(renders, render(t, s))
	}
	if renders[0] != renders[1] || renders[1] != renders[2] {
		t.Fatalf("nodes diverged:\n%s\n---\n%s", renders[0], renders[1])
	}
	if !strings.Contains(renders[0], `a{instance="",job="j3",x="3"} 3`) {
		t.Fatalf("unexpected state:\n%s", renders[0])
	}
}

func TestApplyPanicsOnUndecodableEntry(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Apply of garbage must panic rather than diverge")
		}
	}()
	newTestFSM().Apply(1, []byte{0xff, 0xff})
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "# TYPE a counter\n# HELP a help\na{x=\"1\"} 1\n", "job", "j1", "instance", "i"))
	a.mustOK(pushCmd(t, OpPost, t2, "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", "job", "j2", "x@y", "z"))
	a.apply(pushCmd(t, OpPut, t3, "# TYPE a gauge\na 1\n", "job", "j3"))
	snap := a.s.Snapshot()
	// Changes after the snapshot must not leak into it.
	a.mustOK(pushCmd(t, OpPut, t3, "late 1\n", "job", "late"))

	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	restored := newTestFSM()
	if err := restored.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if restored.AppliedIndex() != 3 || restored.Len() != 3 {
		t.Fatalf("restored index %d, %d groups", restored.AppliedIndex(), restored.Len())
	}
	orig := newTestFSM()
	o := &applier{t: t, s: orig}
	o.mustOK(pushCmd(t, OpPut, t1, "# TYPE a counter\n# HELP a help\na{x=\"1\"} 1\n", "job", "j1", "instance", "i"))
	o.mustOK(pushCmd(t, OpPost, t2, "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", "job", "j2", "x@y", "z"))
	o.apply(pushCmd(t, OpPut, t3, "# TYPE a gauge\na 1\n", "job", "j3"))
	if got, want := render(t, restored), render(t, orig); got != want {
		t.Fatalf("restored exposition differs:\n%s\nwant:\n%s", got, want)
	}
	checkSameGroups(t, restored, orig)
	// The restored indexes must work: a conflicting push is still rejected.
	r := &applier{t: t, s: restored, index: 3}
	r.mustFail(pushCmd(t, OpPut, t3, "# TYPE a gauge\na 1\n", "job", "j9"), "is not a COUNTER")
	// Re-snapshotting the restored state gives the same bytes.
	var again bytes.Buffer
	rs := restored.Snapshot()
	rs.applied = snap.applied
	rs.groups = rs.groups[:0]
	for _, g := range restored.Groups() {
		if g.Labels.Get("job") != "j9" {
			rs.groups = append(rs.groups, g)
		}
	}
	if _, err := rs.WriteTo(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatal("snapshot of restored state differs from the original snapshot")
	}
}

func TestRestoreRejectsCorruptSnapshots(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(pushCmd(t, OpPut, t1, "a 1\nb 2\n", "job", "j1"))
	a.mustOK(pushCmd(t, OpPut, t1, "c 1\n", "job", "j2"))
	good := snapshotBytes(t, a.s.Snapshot())
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x20
	badVersion := append([]byte(nil), good...)
	badVersion[len(snapshotMagic)] = 99
	for name, b := range map[string][]byte{
		"truncated":    good[:len(good)-7],
		"header only":  good[:len(snapshotMagic)+1],
		"flipped byte": flipped,
		"bad version":  badVersion,
		"empty":        nil,
	} {
		t.Run(name, func(t *testing.T) {
			s := newTestFSM()
			(&applier{t: t, s: s}).mustOK(pushCmd(t, OpPut, t2, "keep 1\n", "job", "keep"))
			err := s.Restore(bytes.NewReader(b))
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("want ErrCorruptSnapshot, got %v", err)
			}
			if s.Len() != 1 || s.Group(map[string]string{"job": "keep"}) == nil {
				t.Fatal("failed restore changed the state")
			}
		})
	}
}

// TestSnapshotWritesGroupsInKeyOrder: the capture copies the groups in the
// map's order and leaves the sort to WriteTo (off raft's apply goroutine);
// the bytes must still list the groups in key order, so two stores with
// the same groups, filled in opposite orders, write the same snapshot, as
// does a second WriteTo of the same capture.
func TestSnapshotWritesGroupsInKeyOrder(t *testing.T) {
	const groups = 200
	push := func(g int) *Command {
		return pushCmd(t, OpPut, int64(g+1), fmt.Sprintf("a{x=\"%d\"} %d\n", g, g), "job", "j", "instance", fmt.Sprint(g))
	}
	up, down := &applier{t: t, s: newTestFSM()}, &applier{t: t, s: newTestFSM()}
	for g := 0; g < groups; g++ {
		up.mustOK(push(g))
		down.mustOK(push(groups - 1 - g))
	}
	capture := up.s.Snapshot()
	first := snapshotBytes(t, capture)
	if again := snapshotBytes(t, capture); !bytes.Equal(first, again) {
		t.Fatal("a second WriteTo of the same capture wrote other bytes")
	}
	if other := snapshotBytes(t, down.s.Snapshot()); !bytes.Equal(first, other) {
		t.Fatal("stores with the same groups filled in opposite orders wrote different snapshots")
	}
	keys := make([]string, 0, groups)
	for _, g := range capture.groups {
		keys = append(keys, g.Key)
	}
	if !slices.IsSorted(keys) {
		t.Fatal("the capture's groups are not in key order after WriteTo")
	}
}
