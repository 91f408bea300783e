package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestHAProxyConfig checks the shipped HAProxy configuration: HAProxy
// accepts it (when installed), it retries on 503 (a node that cannot serve
// a current read), and its servers are the API ports of make cluster.
// test/scrape_netns_linux_test.go runs it for real.
func TestHAProxyConfig(t *testing.T) {
	const path = "haproxy/haproxy.cfg"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, want := range []string{"retry-on 503 ", "option redispatch", "balance roundrobin"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("%s lacks %q", path, want)
		}
	}
	servers := regexp.MustCompile(`(?m)^\s*server \S+ (\S+)`).FindAllStringSubmatch(cfg, -1)
	var got []string
	for _, s := range servers {
		got = append(got, s[1])
	}
	if strings.Join(got, " ") != "127.0.0.1:9091 127.0.0.1:9092 127.0.0.1:9093" {
		t.Errorf("servers %v, want the API ports of make cluster", got)
	}
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed (make test-deps); the syntax is not checked")
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}
