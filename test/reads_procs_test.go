package test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestCutOffNodeRefusesReadsUnlessStaleReadsAreOn: four processes, the
// fourth with --cluster.stale-reads; a value is pushed; two are killed.
// The third cannot learn a read index, so it answers every read of the
// pushed metrics with 503 and the reason, and /metrics still shows its own
// metrics in the body. The fourth serves its last state as it is.
func TestCutOffNodeRefusesReadsUnlessStaleReadsAreOn(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test")
	}
	nodes := []*member{newMember(t, "r1"), newMember(t, "r2"), newMember(t, "r3"), newMember(t, "r4")}
	nodes[3].extra = []string{"--cluster.stale-reads"}
	for _, m := range nodes {
		m.extra = append(m.extra, "--cluster.read-timeout=300ms")
		m.start(len(nodes), nodes...)
	}
	waitReady(t, nodes...)
	survivor := nodes[2]
	nodes[0].push("/metrics/job/cutoff", "pushed_value 7\n")
	if got := survivor.get("/metrics"); !strings.Contains(got, `pushed_value{instance="",job="cutoff"} 7`) {
		t.Fatalf("a healthy follower does not show the acknowledged push:\n%s", got)
	}
	nodes[0].kill()
	nodes[1].kill()

	eventually(t, "the survivor refusing /metrics", 10*time.Second, func() bool {
		code, _, err := httpDo("GET", survivor.url()+"/metrics", "")
		return err == nil && code == 503
	})
	code, body, err := httpDo("GET", survivor.url()+"/metrics", "")
	if err != nil || code != 503 {
		t.Fatalf("GET /metrics on a node without quorum: %d %v", code, err)
	}
	for _, want := range []string{"# 503 Service Unavailable: this node cannot serve current pushed metrics", "go_goroutines ", "pushgateway_cluster_reads_refused_total "} {
		if !strings.Contains(body, want) {
			t.Fatalf("the 503 body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "pushed_value") {
		t.Fatalf("the 503 body serves pushed metrics:\n%s", body)
	}
	code, body, err = httpDo("GET", survivor.url()+"/metrics?stale", "")
	if err != nil || code != 200 || !strings.Contains(body, `pushed_value{instance="",job="cutoff"} 7`) {
		t.Fatalf("GET /metrics?stale on a node without quorum: %d %v\n%s", code, err, body)
	}
	code, body, err = httpDo("GET", survivor.url()+"/-/metrics", "")
	if err != nil || code != 200 || !strings.Contains(body, "pushgateway_cluster_reads_refused_total ") || strings.Contains(body, "pushed_value") {
		t.Fatalf("GET /-/metrics on a node without quorum: %d %v\n%s", code, err, body)
	}
	code, body, _ = httpDo("GET", survivor.url()+"/api/v1/metrics", "")
	var env struct{ Status, ErrorType, Error string }
	if code != 503 || json.Unmarshal([]byte(body), &env) != nil || env.Status != "error" || env.Error == "" {
		t.Fatalf("GET /api/v1/metrics on a node without quorum: %d %s", code, body)
	}
	if code, body, _ = httpDo("GET", survivor.url()+"/", ""); code != 503 || !strings.Contains(body, "cannot show current metrics") {
		t.Fatalf("GET / on a node without quorum: %d %s", code, body)
	}

	code, body, err = httpDo("GET", nodes[3].url()+"/metrics", "")
	if err != nil || code != 200 || !strings.Contains(body, `pushed_value{instance="",job="cutoff"} 7`) {
		t.Fatalf("GET /metrics on a node with stale reads, without quorum: %d %v\n%s", code, err, body)
	}
}
