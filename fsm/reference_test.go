package fsm

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// fullCheck is the reference: upstream's way of checking, a full gather of
// the gateway's own families plus every stored family merged by name.
func fullCheck(s *FSM) error {
	self := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var out []*dto.MetricFamily
		for _, name := range []string{"go_gc_duration_seconds", "go_goroutines"} {
			r := s.reserved[name]
			m := &dto.Metric{}
			switch r.Type {
			case dto.MetricType_GAUGE:
				m.Gauge = &dto.Gauge{Value: proto.Float64(1)}
			case dto.MetricType_SUMMARY:
				m.Summary = &dto.Summary{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(1)}
			}
			out = append(out, &dto.MetricFamily{Name: proto.String(name), Help: proto.String(r.Help), Type: r.Type.Enum(), Metric: []*dto.Metric{m}})
		}
		return out, nil
	})
	pushed := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		// Gatherers may re-sort label pairs of what it is given; hand it copies.
		var out []*dto.MetricFamily
		for _, mf := range s.Families() {
			out = append(out, proto.Clone(mf).(*dto.MetricFamily))
		}
		return out, nil
	})
	_, err := prometheus.Gatherers{self, pushed}.Gather()
	return err
}

// clone returns a store restored from a snapshot of s.
func clone(t *testing.T, s *FSM) *FSM {
	t.Helper()
	c := newTestFSM()
	if err := c.Restore(bytes.NewReader(snapshotBytes(t, s.Snapshot()))); err != nil {
		t.Fatal(err)
	}
	return c
}

// snapshotBytes returns sn as WriteTo writes it.
func snapshotBytes(t testing.TB, sn *Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// randomPush builds a random push over a small space of names, types,
// labels and grouping keys, so that conflicts of every kind are frequent.
func randomPush(r *rand.Rand, ts int64) *Command {
	keys := []map[string]string{
		{"job": "j1"}, {"job": "j1", "instance": "x"}, {"job": "j2"}, {"job": "j2", "l": "1"},
	}
	if r.Intn(300) == 0 {
		// Collides with {job="j1"} on the timestamps: poisons the store.
		keys = []map[string]string{{"job": "j1", "instance": ""}}
	}
	names := []string{"a", "a_count", "a_sum", "a_bucket", "b", "go_goroutines", "go_gc_duration_seconds_count"}
	types := []dto.MetricType{dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_UNTYPED, dto.MetricType_SUMMARY, dto.MetricType_HISTOGRAM}
	labels := map[string]string{}
	for k, v := range keys[r.Intn(len(keys))] {
		labels[k] = v
	}
	op := []Op{OpPut, OpPost, OpPost, OpDelete}[r.Intn(4)]
	c := &Command{Op: op, Labels: labels, TimeUnixNano: ts}
	if op == OpDelete {
		return c
	}
	used := map[string]bool{}
	for n := r.Intn(3); n >= 0; n-- {
		name := names[r.Intn(len(names))]
		if used[name] {
			continue
		}
		used[name] = true
		typ := types[r.Intn(len(types))]
		mf := &dto.MetricFamily{Name: proto.String(name), Help: proto.String("h"), Type: typ.Enum()}
		for m := r.Intn(3); m >= 0; m-- {
			metric := &dto.Metric{}
			if r.Intn(3) == 0 {
				metric.Label = append(metric.Label, lp("instance", "x"))
			}
			if r.Intn(2) == 0 {
				metric.Label = append(metric.Label, lp("l", []string{"1", "2"}[r.Intn(2)]))
			}
			switch typ {
			case dto.MetricType_COUNTER:
				metric.Counter = &dto.Counter{Value: proto.Float64(1)}
			case dto.MetricType_GAUGE:
				metric.Gauge = &dto.Gauge{Value: proto.Float64(1)}
			case dto.MetricType_UNTYPED:
				metric.Untyped = &dto.Untyped{Value: proto.Float64(1)}
			case dto.MetricType_SUMMARY:
				metric.Summary = &dto.Summary{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(1)}
			case dto.MetricType_HISTOGRAM:
				metric.Histogram = &dto.Histogram{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(1)}
			}
			mf.Metric = append(mf.Metric, metric)
		}
		c.Families = append(c.Families, mf)
	}
	return c
}

// TestIncrementalCheckAgreesWithFullGather drives random pushes and checks
// that every verdict of the incremental check equals the verdict of a full
// gather of the tentative state, which is what upstream computes.
func TestIncrementalCheckAgreesWithFullGather(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	s := newTestFSM()
	a := &applier{t: t, s: s}
	rejected, compared, poisoned, poisonedRun := 0, 0, 0, 0
	for step := 0; step < 3000; step++ {
		c := randomPush(r, int64(step+1)*1e9)
		if (fullCheck(s) == nil) != s.Consistent() {
			t.Fatalf("step %d: Consistent()=%v but full gather says %v", step, s.Consistent(), fullCheck(s))
		}
		if !s.Consistent() {
			poisoned++
			if poisonedRun++; poisonedRun > 20 {
				// Heal now and then so that most steps start consistent.
				a.mustOK(&Command{Op: OpWipe, TimeUnixNano: int64(step) * 1e9})
				poisonedRun = 0
				continue
			}
		} else {
			poisonedRun = 0
		}
		tentative := clone(t, s)
		unchecked := *c
		unchecked.Unchecked = true
		b, err := unchecked.Encode()
		if err != nil {
			t.Fatal(err)
		}
		tentative.Apply(uint64(step+1), b)
		refErr := fullCheck(tentative)

		res := a.apply(c)
		if c.Op == OpDelete {
			// Upstream never checks a delete; it always succeeds.
			if res.Err != nil {
				t.Fatalf("step %d: delete rejected: %v", step, res.Err)
			}
			continue
		}
		compared++
		if (res.Err != nil) != (refErr != nil) {
			t.Fatalf("step %d: %s %v %v: incremental verdict %v, full gather %v", step, c.Op, c.Labels, c.Families, res.Err, refErr)
		}
		if res.Err != nil {
			rejected++
		}
	}
	if compared < 1000 || rejected < compared/10 {
		t.Fatalf("workload too tame: %d compared, %d rejected", compared, rejected)
	}
	if poisoned == 0 {
		t.Fatal("the workload never reached an inconsistent store")
	}
	t.Logf("%d verdicts compared, %d rejections, %d steps on an inconsistent store", compared, rejected, poisoned)
}
