package test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// pushedLines returns the lines of an exposition that hold samples of
// name, in order.
func pushedLines(body, name string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name+"{") {
			out = append(out, l)
		}
	}
	return out
}

// TestCompressedScrapeIsWholeForEveryClient scrapes a family of 5,000
// metrics, built from cached compressed pieces, with clients that read a
// gzip body their own way (curl --compressed reads only a stream's first
// gzip member; gzip -d): each gets every sample, as the uncompressed
// scrape shows them. (Go's reader, Prometheus', is the httpapi tests' and
// the end-to-end scrape test's.)
func TestCompressedScrapeIsWholeForEveryClient(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl not installed under CI")
		}
		t.Skip("no curl: apt-get install curl")
	}
	p := startOurs(t)
	var body strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&body, "many{i=\"%05d\"} %d\n", i, i)
	}
	if code, resp, err := httpDo("PUT", p.url+"/metrics/job/many", body.String()); err != nil || code != 200 {
		t.Fatalf("push: %d %v %s", code, err, resp)
	}
	_, plain, err := httpDo("GET", p.url+"/metrics", "")
	if err != nil {
		t.Fatal(err)
	}
	want := pushedLines(plain, "many")
	if len(want) != 5000 {
		t.Fatalf("identity scrape holds %d samples", len(want))
	}
	for name, cmdline := range map[string]string{
		"curl --compressed": fmt.Sprintf("%s -sf --compressed %s/metrics", curl, p.url),
		"gzip -d":           fmt.Sprintf("%s -sf -H 'Accept-Encoding: gzip' %s/metrics | gzip -d", curl, p.url),
	} {
		out, err := exec.Command("sh", "-c", cmdline).Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := pushedLines(string(out), "many")
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s read %d of the 5,000 samples", name, len(got))
		}
	}
}
