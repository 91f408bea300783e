package test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestQuotasOnAClusterOfProcesses: the cluster-wide quotas hold on every
// node: a push that would create a group beyond --push.max-groups, or take
// the store beyond --push.max-total-series, gets 429 naming the quota and
// changes nothing; a delete frees room; usage is on /metrics and the
// cluster page.
func TestQuotasOnAClusterOfProcesses(t *testing.T) {
	ms := []*member{newMember(t, "q1"), newMember(t, "q2"), newMember(t, "q3")}
	for _, m := range ms {
		// Each group of one metric holds 3 series (push_time_seconds and
		// push_failure_time_seconds included).
		m.extra = []string{"--push.max-groups=3", "--push.max-total-series=10"}
		m.start(3, ms[0])
	}
	waitReady(t, ms...)
	for i, m := range ms {
		m.push(fmt.Sprintf("/metrics/job/g%d", i), "x 1\n")
	}
	for _, m := range ms {
		code, body, err := httpDo("PUT", m.url()+"/metrics/job/g4", "x 1\n")
		if err != nil || code != http.StatusTooManyRequests || !strings.Contains(body, "--push.max-groups=3") || !strings.Contains(body, "holds 3 groups") {
			t.Fatalf("a fourth group via %s: %d %v %q", m.name, code, err, body)
		}
		code, body, err = httpDo("PUT", m.url()+"/metrics/job/g0", "x 1\ny 1\nz 1\n")
		if err != nil || code != http.StatusTooManyRequests || !strings.Contains(body, "--push.max-total-series=10") {
			t.Fatalf("a bigger group via %s: %d %v %q", m.name, code, err, body)
		}
	}
	state := assertSameState(t, ms...)
	if strings.Contains(state, `"g4"`) || strings.Contains(state, `"y"`) {
		t.Fatalf("a push over a quota changed the state: %s", state)
	}
	for _, m := range ms {
		metrics := m.get("/metrics")
		for _, want := range []string{"pushgateway_store_groups 3", "pushgateway_store_series 9",
			`pushgateway_store_quota{quota="groups"} 3`, `pushgateway_store_quota{quota="series"} 10`} {
			if !strings.Contains(metrics, want) {
				t.Fatalf("%s /metrics lacks %q", m.name, want)
			}
		}
		if page := m.get("/cluster"); !strings.Contains(page, "3 / 3") || !strings.Contains(page, "9 / 10") {
			t.Fatalf("%s cluster page does not show the quota usage", m.name)
		}
	}
	// A delete frees room.
	if code, body, err := httpDo("DELETE", ms[1].url()+"/metrics/job/g0", ""); err != nil || code != http.StatusAccepted {
		t.Fatalf("delete: %d %v %s", code, err, body)
	}
	ms[2].push("/metrics/job/g4", "x 1\n")
	assertSameState(t, ms...)
}
