package httpapi_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

func adminOn(o *httpapi.Options) { o.EnableAdminAPI = true }

func TestSnapshotAndRestoreThroughTheAdminAPI(t *testing.T) {
	src := startGateway(t, adminOn)
	src.expect("PUT", "/metrics/job/a/instance/i", "# TYPE x counter\nx 1\n", 200, "")
	src.expect("PUT", "/metrics/job/b", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", 200, "")
	wantMetrics := src.pushed("/metrics")
	_, wantAPI, _ := src.do("GET", "/api/v1/metrics", nil)

	code, snap, h := src.do("GET", "/api/v1/admin/snapshot", nil)
	if code != 200 || h.Get("Content-Type") != httpapi.SnapshotContentType || h.Get(httpapi.IndexHeader) == "" || h.Get("X-Pushgateway-Groups") != "2" {
		t.Fatalf("snapshot: %d %v", code, h)
	}
	info, err := fsm.ValidateSnapshot([]byte(snap))
	if err != nil || info.Groups != 2 {
		t.Fatalf("downloaded snapshot: %+v %v", info, err)
	}

	dst := startGateway(t, adminOn)
	dst.expect("PUT", "/metrics/job/replaced", "# TYPE x gauge\nx 5\n", 200, "")
	before := dst.pushed("/metrics")

	// Corrupt or truncated: 400, nothing changes.
	bad := []byte(snap)
	bad = append([]byte(nil), bad...)
	bad[len(bad)/2] ^= 0x01
	for _, body := range []string{string(bad), snap[:len(snap)-3], "", "not a snapshot at all"} {
		code, resp, _ := dst.do("PUT", "/api/v1/admin/restore", strings.NewReader(body))
		if code != 400 || !strings.Contains(resp, "corrupt snapshot") {
			t.Fatalf("corrupt restore: %d %s", code, resp)
		}
	}
	if dst.pushed("/metrics") != before {
		t.Fatal("a refused restore changed the state")
	}

	code, resp, h := dst.do("PUT", "/api/v1/admin/restore", bytes.NewReader([]byte(snap)))
	if code != 200 || h.Get(httpapi.IndexHeader) == "" {
		t.Fatalf("restore: %d %s", code, resp)
	}
	var env struct {
		Status string `json:"status"`
		Data   struct {
			Groups int    `json:"groups"`
			Index  uint64 `json:"index"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(resp), &env); err != nil || env.Status != "success" || env.Data.Groups != 2 || env.Data.Index == 0 {
		t.Fatalf("restore answer %s: %v", resp, err)
	}
	if got := dst.pushed("/metrics"); got != wantMetrics {
		t.Fatalf("after restore:\n%s\nwant:\n%s", got, wantMetrics)
	}
	if _, got, _ := dst.do("GET", "/api/v1/metrics", nil); got != wantAPI {
		t.Fatalf("/api/v1/metrics after restore:\n%s\nwant:\n%s", got, wantAPI)
	}
	// The restored state is live: a conflicting push is refused, a fitting one taken.
	dst.expect("PUT", "/metrics/job/c", "# TYPE x gauge\nx 1\n", 400, "is not a COUNTER")
	dst.expect("PUT", "/metrics/job/c", "# TYPE x counter\nx{other=\"1\"} 1\n", 200, "")
}

func TestAdminOperationsNeedTheAdminAPI(t *testing.T) {
	g := startGateway(t, nil)
	g.expect("GET", "/api/v1/admin/snapshot", "", 404, "")
	g.expect("PUT", "/api/v1/admin/restore", "x", 404, "")
	g.expect("POST", "/api/v1/admin/cluster/transfer-leadership", "", 404, "")

	a := startGateway(t, adminOn)
	// A lone node has no voter to hand leadership to.
	a.expect("POST", "/api/v1/admin/cluster/transfer-leadership", "", 400, "no other voter")
	a.expect("POST", "/api/v1/admin/cluster/transfer-leadership?to=n1", "", 400, "is the leader already")
}
