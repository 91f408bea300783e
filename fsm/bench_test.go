package fsm

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
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
				a.mustApplyEncoded(cmds[i%len(cmds)])
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
		a.applyEncoded(enc)
		exposeTwelve(b, a.s)
	}
}

// BenchmarkFamiliesAfterValuePushes measures the exposition of a store of
// G groups after 100 of them were pushed again with new values only (the
// usual push: every metric keeps its place in the order, found by binary
// search), the work a scrape or the warmer does after pushes.
func BenchmarkFamiliesAfterValuePushes(b *testing.B) {
	for _, groups := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			a := fill(b, groups)
			a.s.Exposed()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for _, enc := range valuePushes(b, i*100, 100, groups) {
					a.mustApplyEncoded(enc)
				}
				b.StartTimer()
				exposeTwelve(b, a.s)
			}
		})
	}
}

// BenchmarkApplyWhileExposing measures applying value-only pushes into a
// store of 100,000 groups while another goroutine builds the exposition
// again and again (a scrape or the warmer after every change): the p99 and
// the maximum of one Apply show how long a write waits for the exposition.
func BenchmarkApplyWhileExposing(b *testing.B) {
	const groups = 100000
	a := fill(b, groups)
	a.s.Exposed()
	cmds := valuePushes(b, 0, 1000, groups)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				a.s.Exposed()
			}
		}
	}()
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		a.mustApplyEncoded(cmds[i%len(cmds)])
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	close(stop)
	<-done
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(took[len(took)-1].Microseconds()), "max-µs")
}

// valuePushes returns n encoded benchmark pushes, numbers first to
// first+n-1, each of new values to an existing group of a store of the
// given number of groups (spread over it by a prime stride).
func valuePushes(b *testing.B, first, n, groups int) [][]byte {
	cmds := make([][]byte, n)
	for k := range cmds {
		i := first + k + 1
		enc, err := pushCmd(b, OpPut, int64(i), tenGauges(i), "job", "bench", "instance", fmt.Sprint((i*7919)%groups)).Encode()
		if err != nil {
			b.Fatal(err)
		}
		cmds[k] = enc
	}
	return cmds
}

// BenchmarkFamiliesAfterChurn measures the exposition of a store of G
// groups after 100 groups were deleted and pushed again with series of a
// new label value (churn: their metrics leave the order and come back
// elsewhere), the work a scrape or the warmer does (writes wait only while
// the changes are taken: BenchmarkApplyWhileExposing).
func BenchmarkFamiliesAfterChurn(b *testing.B) {
	for _, groups := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			a := fill(b, groups)
			a.s.Exposed()
			gen := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for k := 0; k < 100; k++ {
					gen++
					g := (gen * 7919) % groups
					labels := []string{"job", "bench", "instance", fmt.Sprint(g)}
					a.mustOK(pushCmd(b, OpDelete, int64(gen), "", labels...))
					body := strings.ReplaceAll(tenGauges(gen), `kind="x"`, fmt.Sprintf(`gen="%d"`, gen))
					a.mustOK(pushCmd(b, OpPut, int64(gen), body, labels...))
				}
				b.StartTimer()
				exposeTwelve(b, a.s)
			}
		})
	}
}

// BenchmarkFirstExposition measures ordering a whole store of 10,000
// groups that was never exposed (after a fill), the work the first
// exposition after a restart would do if the restore did not do it first.
func BenchmarkFirstExposition(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a := fill(b, 10000)
		b.StartTimer()
		exposeTwelve(b, a.s)
	}
}

// BenchmarkFill measures applying the benchmark push to 10,000 new groups
// (a fill) and reports the live heap per stored group afterwards, which
// sets the garbage collector's work per cycle.
func BenchmarkFill(b *testing.B) {
	const groups = 10000
	cmds := fillCommands(b, groups)
	var heap uint64
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		heap = heapGrowth(b, func() any { return applyAll(b, cmds) })
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*groups), "ns/push")
	b.ReportMetric(float64(heap)/groups, "heap-bytes/group")
}

// fillCommands returns the encoded benchmark pushes to the given number of
// new groups.
func fillCommands(b *testing.B, groups int) [][]byte {
	cmds := make([][]byte, groups)
	for i := range cmds {
		enc, err := pushCmd(b, OpPut, int64(i+1), tenGauges(i), "job", "bench", "instance", fmt.Sprint(i)).Encode()
		if err != nil {
			b.Fatal(err)
		}
		cmds[i] = enc
	}
	return cmds
}

// applyAll applies cmds to a new state machine.
func applyAll(b *testing.B, cmds [][]byte) *FSM {
	s := newTestFSM()
	for i, c := range cmds {
		if r := s.Apply(uint64(i+1), c); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	return s
}

// BenchmarkRestore measures restoring a snapshot of 10,000 groups of 10
// families: what a node does at start before it replays the log.
func BenchmarkRestore(b *testing.B) {
	a := fill(b, 10000)
	var buf bytes.Buffer
	if _, err := a.s.Snapshot().WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	var heap uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		heap = heapGrowth(b, func() any {
			s := newTestFSM()
			if err := s.Restore(bytes.NewReader(buf.Bytes())); err != nil {
				b.Fatal(err)
			}
			return s
		})
	}
	b.ReportMetric(float64(heap)/10000, "heap-bytes/group")
}

// heapGrowth runs f, timed, and returns by how much the live heap grew
// while what f returns is kept (measured outside the timer).
func heapGrowth(b *testing.B, f func() any) uint64 {
	b.StopTimer()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.StartTimer()
	kept := f()
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(kept)
	b.StartTimer()
	return after.HeapAlloc - before.HeapAlloc
}

// BenchmarkExposedStoreHeap reports the live heap per group of a store of
// 10,000 groups filled and then exposed once, what a serving node's state
// machine holds: the stored families, the index and the exposition order
// (the encodings httpapi caches aside).
func BenchmarkExposedStoreHeap(b *testing.B) {
	benchExposedStoreHeap(b, fillCommands(b, 10000), 0)
}

// BenchmarkExposedDuringFillHeap is BenchmarkExposedStoreHeap for a store
// exposed every 500 groups while it is filled, as the warmer does during a
// fill: the order of every name grows by a step at each exposition.
func BenchmarkExposedDuringFillHeap(b *testing.B) {
	benchExposedStoreHeap(b, fillCommands(b, 10000), 500)
}

// benchExposedStoreHeap reports the live heap per command of a store that
// applied cmds (one per group) and was then exposed once, and also after
// every exposeEvery commands if that is not 0.
func benchExposedStoreHeap(b *testing.B, cmds [][]byte, exposeEvery int) {
	var heap uint64
	for n := 0; n < b.N; n++ {
		heap = heapGrowth(b, func() any {
			s := newTestFSM()
			for i, c := range cmds {
				if r := s.Apply(uint64(i+1), c); r.Err != nil {
					b.Fatal(r.Err)
				}
				if exposeEvery > 0 && (i+1)%exposeEvery == 0 {
					s.Exposed()
				}
			}
			s.Exposed()
			return s
		})
	}
	b.ReportMetric(float64(heap)/float64(len(cmds)), "heap-bytes/group")
}

// BenchmarkSnapshotWrite writes a snapshot of 10,000 groups of 10 gauges,
// what raft persists (the encoding of every group and family).
func BenchmarkSnapshotWrite(b *testing.B) {
	a := fill(b, 10000)
	var buf bytes.Buffer
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if _, err := a.s.Snapshot().WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

// BenchmarkUnlabelledStoreHeap is BenchmarkExposedStoreHeap for pushes of
// metrics without labels of their own, as most batch jobs push them: each
// stored metric's labels are then only the group's.
func BenchmarkUnlabelledStoreHeap(b *testing.B) {
	const groups = 10000
	cmds := make([][]byte, groups)
	for i := range cmds {
		var sb strings.Builder
		for f := 0; f < 10; f++ {
			fmt.Fprintf(&sb, "# TYPE bench_metric_%d gauge\nbench_metric_%d %d\n", f, f, i)
		}
		enc, err := pushCmd(b, OpPut, int64(i+1), sb.String(), "job", "bench", "instance", fmt.Sprint(i)).Encode()
		if err != nil {
			b.Fatal(err)
		}
		cmds[i] = enc
	}
	benchExposedStoreHeap(b, cmds, 0)
}

// BenchmarkSnapshotCapture measures what raft's state machine goroutine
// waits for when it takes a snapshot (FSM.Snapshot): no command is applied
// meanwhile, so every write waits this long.
func BenchmarkSnapshotCapture(b *testing.B) {
	a := fill(b, 100000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if sn := a.s.Snapshot(); sn.Len() != 100000 {
			b.Fatalf("snapshot of %d groups", sn.Len())
		}
	}
}
