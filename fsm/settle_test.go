package fsm

import (
	"fmt"
	"math/rand"
	"testing"

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
	keys := []map[string]string{
		{"job": "j"}, {"job": "j", "a": "1"}, {"job": "j", "b": "1"}, {"job": "j", "a": "2"}, {"job": "k", "b": "1"}, {"job": "j", "a": "1", "b": "1"},
	}
	for i := 0; i < 40; i++ {
		keys = append(keys, map[string]string{"job": "many", "instance": fmt.Sprint(i)})
	}
	compared := 0
	for step := 0; step < 4000; step++ {
		ts := int64(step+1) * 1e9
		labels := map[string]string{}
		for k, v := range keys[r.Intn(len(keys))] {
			labels[k] = v
		}
		var c *Command
		switch n := r.Intn(100); {
		case n < 4:
			c = &Command{Op: OpDelete, Labels: labels, TimeUnixNano: ts}
		case n == 4 && r.Intn(10) == 0:
			c = &Command{Op: OpWipe, TimeUnixNano: ts}
		default:
			c = &Command{Op: []Op{OpPut, OpPost}[r.Intn(2)], Labels: labels, TimeUnixNano: ts, Unchecked: true}
			for _, name := range []string{"a", "b", "c"} {
				if r.Intn(3) == 0 {
					continue
				}
				mf := &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum()}
				for m := r.Intn(3); m >= 0; m-- {
					metric := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(float64(r.Intn(1000)))}}
					if r.Intn(2) == 0 {
						metric.Label = append(metric.Label, lp("x", fmt.Sprint(r.Intn(3))))
					}
					if r.Intn(4) == 0 {
						metric.Label = append(metric.Label, lp("y", fmt.Sprint(r.Intn(2))))
					}
					mf.Metric = append(mf.Metric, metric)
				}
				c.Families = append(c.Families, mf)
			}
		}
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []*applier{lazy, eager} {
			a.index++
			a.s.Apply(a.index, b)
		}
		eager.s.Families()
		if r.Intn(25) != 0 {
			continue
		}
		compared++
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
