package fsm

import (
	"fmt"
	"strings"
	"testing"
)

// tenGauges is a push of 10 gauge families, the benchmark workload.
func tenGauges(v int) string {
	var sb strings.Builder
	for f := 0; f < 10; f++ {
		fmt.Fprintf(&sb, "# TYPE bench_metric_%d gauge\nbench_metric_%d{kind=\"x\"} %d\n", f, f, v)
	}
	return sb.String()
}

func fill(b *testing.B, groups int) *applier {
	a := &applier{t: b, s: newTestFSM()}
	for g := 0; g < groups; g++ {
		a.mustOK(pushCmd(b, OpPut, int64(g), tenGauges(g), "job", "bench", "instance", fmt.Sprint(g)))
	}
	return a
}

// BenchmarkApplyPut measures applying a checked PUT of 10 families into a
// store of 1,000 groups: its cost must not grow with the store.
func BenchmarkApplyPut(b *testing.B) {
	for _, groups := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			a := fill(b, groups)
			cmds := make([][]byte, 256)
			for i := range cmds {
				enc, err := pushCmd(b, OpPut, int64(i), tenGauges(i), "job", "bench", "instance", fmt.Sprint(i%groups)).Encode()
				if err != nil {
					b.Fatal(err)
				}
				cmds[i] = enc
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.index++
				if r := a.s.Apply(a.index, cmds[i%len(cmds)]); r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		})
	}
}

// BenchmarkFamiliesAfterPush measures rebuilding the merged exposition of
// 1,000 groups after one group changed.
func BenchmarkFamiliesAfterPush(b *testing.B) {
	a := fill(b, 1000)
	cmd := pushCmd(b, OpPut, 1, tenGauges(1), "job", "bench", "instance", "1")
	enc, _ := cmd.Encode()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.index++
		a.s.Apply(a.index, enc)
		if len(a.s.Families()) != 12 {
			b.Fatal("unexpected family count")
		}
	}
}
