package cluster

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// startBenchCluster starts size in-process nodes on loopback, like
// startCluster, for a benchmark.
func startBenchCluster(b *testing.B, size int) []*Node {
	b.Helper()
	var nodes []*Node
	for i := 0; i < size; i++ {
		var peers []string
		if i > 0 {
			peers = []string{nodes[0].GossipAddress()}
		}
		cfg := nodeConfig(b.TempDir(), fmt.Sprintf("node-%d", i), size, peers)
		cfg.WriteTimeout = 30 * time.Second
		n, err := Start(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = n.Shutdown() })
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready, leader := true, ""
		for _, n := range nodes {
			_, id := n.raft.LeaderWithID()
			if n.Ready() != nil || id == "" || (leader != "" && string(id) != leader) {
				ready = false
			}
			leader = string(id)
		}
		if ready {
			return nodes
		}
		if time.Now().After(deadline) {
			b.Fatal("cluster not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fillCommand is the pgbench push: 10 gauge families with one labelled
// sample each, to group i.
func fillCommand(b *testing.B, i int) *fsm.Command {
	var sb strings.Builder
	for f := 0; f < 10; f++ {
		fmt.Fprintf(&sb, "# TYPE bench_metric_%d gauge\nbench_metric_%d{kind=\"bench\"} %d.%d\n", f, f, i, f)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	cmd := &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "bench", "instance": fmt.Sprint(i)}, TimeUnixNano: int64(i+1) * 1e6}
	for _, mf := range mfs {
		cmd.Families = append(cmd.Families, mf)
	}
	return cmd
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkClusterFill measures what pgbench's fill does, without HTTP: G
// new groups written from 16 concurrent clients, round-robin through the
// nodes of a 3-node cluster (and of one node), each write committed with
// fsync and applied on the node that accepted it before it returns. It
// reports pushes/s over the whole fill and over its last fifth (the rate
// at about G groups), and the CPU time of the whole process (all nodes)
// per push. Run with -benchtime=1x.
func BenchmarkClusterFill(b *testing.B) {
	for _, size := range []int{1, 3} {
		for _, groups := range []int{100, 1000, 10000} {
			b.Run(fmt.Sprintf("nodes=%d/groups=%d", size, groups), func(b *testing.B) {
				for it := 0; it < b.N; it++ {
					b.StopTimer()
					nodes := startBenchCluster(b, size)
					cmds := make([]*fsm.Command, groups)
					for i := range cmds {
						cmds[i] = fillCommand(b, i)
					}
					var next, done atomic.Int64
					var tailStart atomic.Int64
					tailFrom := int64(groups - groups/5)
					var wg sync.WaitGroup
					b.StartTimer()
					start, cpuStart := time.Now(), cpuTime()
					for c := 0; c < 16; c++ {
						wg.Go(func() {
							for {
								i := next.Add(1) - 1
								if i >= int64(groups) {
									return
								}
								if i == tailFrom {
									tailStart.Store(time.Now().UnixNano())
								}
								res, err := nodes[int(i)%len(nodes)].Submit(context.Background(), cmds[i])
								if err != nil || res.Err != nil {
									b.Errorf("push %d: %v %v", i, err, res)
									return
								}
								done.Add(1)
							}
						})
					}
					wg.Wait()
					elapsed, cpu := time.Since(start), cpuTime()-cpuStart
					b.StopTimer()
					tail := time.Duration(time.Now().UnixNano() - tailStart.Load())
					b.ReportMetric(float64(groups)/elapsed.Seconds(), "pushes/s")
					b.ReportMetric(float64(groups/5)/tail.Seconds(), "tail-pushes/s")
					b.ReportMetric(float64(cpu.Microseconds())/float64(groups), "cpu-us/push")
					for _, n := range nodes {
						_ = n.Shutdown()
					}
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkClusterFillCurve fills one 3-node cluster with 20,000 groups in
// segments of 2,000 and logs, per segment, pushes/s, the CPU time of the
// process per push and the live heap: whether the cost of a push grows
// with the number of groups already stored. It reports the first and the
// last segment. Run with -benchtime=1x -v.
func BenchmarkClusterFillCurve(b *testing.B) {
	const groups, seg = 20000, 2000
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		nodes := startBenchCluster(b, 3)
		for s := 0; s < groups/seg; s++ {
			cmds := make([]*fsm.Command, seg)
			for i := range cmds {
				cmds[i] = fillCommand(b, s*seg+i)
			}
			runtime.GC()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.StartTimer()
			start, cpuStart := time.Now(), cpuTime()
			for c := 0; c < 16; c++ {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < seg; i = next.Add(1) - 1 {
						res, err := nodes[int(i)%len(nodes)].Submit(context.Background(), cmds[i])
						if err != nil || res.Err != nil {
							b.Errorf("push: %v %v", err, res)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed, cpu := time.Since(start), cpuTime()-cpuStart
			b.StopTimer()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			rate, perPush := float64(seg)/elapsed.Seconds(), float64(cpu.Microseconds())/seg
			b.Logf("groups %5d-%5d: %5.0f pushes/s, %4.0f cpu-us/push, heap %4d MiB", s*seg, (s+1)*seg, rate, perPush, ms.HeapAlloc>>20)
			switch s {
			case 0:
				b.ReportMetric(rate, "first-pushes/s")
				b.ReportMetric(perPush, "first-cpu-us/push")
			case groups/seg - 1:
				b.ReportMetric(rate, "last-pushes/s")
				b.ReportMetric(perPush, "last-cpu-us/push")
			}
		}
		for _, n := range nodes {
			_ = n.Shutdown()
		}
		b.StartTimer()
	}
}
