package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func benchBody(v int) string {
	var sb strings.Builder
	for f := 0; f < 10; f++ {
		fmt.Fprintf(&sb, "# TYPE bench_metric_%d gauge\nbench_metric_%d{kind=\"x\"} %d\n", f, f, v)
	}
	return sb.String()
}

func benchGateway(b *testing.B, groups int) *gateway {
	g := startGatewayTB(b)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < groups; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			benchPut(b, g.url, i, i)
		}(i)
	}
	wg.Wait()
	return g
}

func benchPut(b *testing.B, url string, group, v int) {
	resp, err := http.Post(fmt.Sprintf("%s/metrics/job/bench/instance/%d", url, group), "text/plain", strings.NewReader(benchBody(v)))
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Errorf("push: %d", resp.StatusCode)
	}
}

// BenchmarkPush measures HTTP pushes (10 gauge families each) from 16
// concurrent clients into 1,000 groups on a one-node cluster, every write
// committed to the raft log with fsync.
func BenchmarkPush(b *testing.B) {
	g := benchGateway(b, 1000)
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 clients
	var n int64
	var mu sync.Mutex
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			i := int(n)
			mu.Unlock()
			benchPut(b, g.url, i%1000, i)
		}
	})
}

// BenchmarkScrape measures GET /metrics (text) with 1,000 groups, after a
// push so the cached exposition must be rebuilt as in real use.
func BenchmarkScrape(b *testing.B) {
	g := benchGateway(b, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		benchPut(b, g.url, i%1000, i)
		b.StartTimer()
		resp, err := http.Get(g.url + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		b.SetBytes(n)
	}
}
