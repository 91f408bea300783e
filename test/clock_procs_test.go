package test

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOneClockForTheLog: a node whose clock is 10 minutes behind takes a
// push; the push time comes from the leader's clock (so expiry, which
// uses the leader's clock too, cannot remove it early), and the skew is
// measured, shown by /api/v1/cluster and the metrics, and logged.
func TestOneClockForTheLog(t *testing.T) {
	ms := []*member{newMember(t, "c1"), newMember(t, "c2"), newMember(t, "skewed")}
	ms[2].extra = []string{"--debug.clock-shift=-10m"}
	for _, m := range ms {
		m.extra = append(m.extra, "--push.expire-after=5m")
		m.start(3, ms[0])
	}
	leader := waitReady(t, ms...)
	skewed := ms[2]
	if leader == skewed.name {
		code, body, err := httpDo("POST", ms[0].url()+"/api/v1/admin/cluster/transfer-leadership?to=c1", "")
		if err != nil || code != 200 {
			t.Fatalf("transfer leadership: %d %v %s", code, err, body)
		}
		leader = waitReady(t, ms...)
	}

	skewed.push("/metrics/job/skewed", "x 1\n")
	var groups struct {
		Data []struct {
			Labels   map[string]string `json:"labels"`
			PushTime struct {
				Metrics []struct {
					Value string `json:"value"`
				} `json:"metrics"`
			} `json:"push_time_seconds"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(skewed.get("/api/v1/metrics")), &groups); err != nil {
		t.Fatal(err)
	}
	var pushTime float64
	for _, g := range groups.Data {
		if g.Labels["job"] == "skewed" {
			if err := json.Unmarshal([]byte(g.PushTime.Metrics[0].Value), &pushTime); err != nil {
				t.Fatal(err)
			}
		}
	}
	if off := time.Since(time.Unix(0, int64(pushTime*1e9))); math.Abs(off.Seconds()) > 60 {
		t.Fatalf("push through the skewed node carries its clock (%v off the leader's), not the leader's", off)
	}

	// Every node measures the skewed clock, relative to the leader's.
	for _, m := range ms {
		eventually(t, m.name+" measures the skewed clock", 30*time.Second, func() bool {
			v, ok := m.cluster()
			if !ok {
				return false
			}
			code, body, err := httpDo("GET", m.url()+"/api/v1/cluster", "")
			if err != nil || code != 200 || v.Leader != leader {
				return false
			}
			var env struct {
				Data struct {
					Members []struct {
						Name   string   `json:"name"`
						Offset *float64 `json:"clock_offset_seconds"`
					} `json:"members"`
				} `json:"data"`
			}
			if json.Unmarshal([]byte(body), &env) != nil {
				return false
			}
			for _, mem := range env.Data.Members {
				if mem.Name == skewed.name {
					return mem.Offset != nil && math.Abs(*mem.Offset+600) < 5
				}
			}
			return false
		})
	}
	const metric = `pushgateway_cluster_clock_offset_seconds{member="skewed"} `
	exposed := skewed.get("/metrics")
	i := strings.Index(exposed, metric)
	if i < 0 {
		t.Fatalf("no clock offset metric for the skewed member")
	}
	value, err := strconv.ParseFloat(strings.Fields(exposed[i+len(metric):])[0], 64)
	if err != nil || math.Abs(value+600) > 5 {
		t.Fatalf("clock offset metric of the skewed member: %v %v", value, err)
	}
	eventually(t, "the skewed node warns about its clock", 30*time.Second, func() bool {
		return strings.Contains(skewed.out.String(), "this node's clock is off the leader's")
	})
}
