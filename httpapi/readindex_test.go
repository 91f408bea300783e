package httpapi_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

// TestReadsCarryTheAppliedIndex checks that reads answer with the index
// of the state they were read from: at least that of every acknowledged
// write, so a client can tell whether a node has applied its write.
func TestReadsCarryTheAppliedIndex(t *testing.T) {
	g := startGateway(t, nil)
	for i := 0; i < 3; i++ {
		_, _, h := g.do("PUT", "/metrics/job/a", strings.NewReader("m "+strconv.Itoa(i)+"\n"))
		written, err := strconv.ParseUint(h.Get(httpapi.IndexHeader), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/metrics", "/api/v1/metrics", "/api/v1/status"} {
			code, body, h := g.do("GET", path, nil)
			read, err := strconv.ParseUint(h.Get(httpapi.IndexHeader), 10, 64)
			if code != 200 || err != nil || read < written {
				t.Fatalf("GET %s after a write at %d: %d, index header %q", path, written, code, h.Get(httpapi.IndexHeader))
			}
			if path == "/metrics" && !strings.Contains(body, `m{instance="",job="a"} `+strconv.Itoa(i)) {
				t.Fatalf("GET /metrics at index %d lacks the write at %d:\n%s", read, written, body)
			}
		}
	}
}
