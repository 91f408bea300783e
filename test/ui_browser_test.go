package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// uiChromium returns the path of Debian's chromium. Without it the test is
// skipped, except under CI, where the test setup installs it.
func uiChromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("chromium not installed (apt-get install chromium); the browser test needs it")
		}
		t.Fatal("chromium not installed under CI: ", err)
	}
	return p
}

// uiBrowser collects what the page reports while the test drives it: console
// messages, requests and the confirm dialogs it accepted.
type uiBrowser struct {
	mu       sync.Mutex
	console  []chromedp.ConsoleMessage
	requests []string
	dialogs  []string
}

func (b *uiBrowser) snapshot() (console []chromedp.ConsoleMessage, requests, dialogs []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append(console, b.console...), append(requests, b.requests...), append(dialogs, b.dialogs...)
}

// uiPushProto pushes length-delimited protobuf families.
func uiPushProto(t *testing.T, u string, fams ...*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(delimited(fams...)))
	req.Header.Set("Content-Type", protoContentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT %s: %v %v", u, resp, err)
	}
	resp.Body.Close()
}

// uiPushDemo pushes the groups the screenshots show.
func uiPushDemo(t *testing.T, m *member) {
	t.Helper()
	m.push("/metrics/job/nightly-backup/instance/db1", `# HELP backup_duration_seconds How long the last backup took.
# TYPE backup_duration_seconds gauge
backup_duration_seconds 42.7
# HELP backup_last_success_timestamp_seconds When the last backup succeeded.
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds 1.7e+09
# HELP backup_files_total Files written, by kind.
# TYPE backup_files_total counter
backup_files_total{kind="full"} 1203
backup_files_total{kind="incremental"} 87
`)
	m.push("/metrics/job/etl/instance/worker-1/stage/load", `# HELP etl_batch_seconds Batch processing time.
# TYPE etl_batch_seconds histogram
etl_batch_seconds_bucket{le="0.5"} 3
etl_batch_seconds_bucket{le="1"} 9
etl_batch_seconds_bucket{le="5"} 14
etl_batch_seconds_bucket{le="+Inf"} 15
etl_batch_seconds_sum 21.4
etl_batch_seconds_count 15
# HELP etl_row_bytes Size of the rows loaded.
# TYPE etl_row_bytes summary
etl_row_bytes{quantile="0.5"} 412
etl_row_bytes{quantile="0.9"} 1024
etl_row_bytes{quantile="0.99"} 4096
etl_row_bytes_sum 981234
etl_row_bytes_count 2210
`)
	native := family("request_latency_seconds", "A native histogram.", dto.MetricType_HISTOGRAM, &dto.Metric{Histogram: &dto.Histogram{
		SampleCount: proto.Uint64(11), SampleSum: proto.Float64(6.2), Schema: proto.Int32(0), ZeroThreshold: proto.Float64(0.001), ZeroCount: proto.Uint64(1),
		PositiveSpan: []*dto.BucketSpan{{Offset: proto.Int32(-1), Length: proto.Uint32(3)}}, PositiveDelta: []int64{4, 1, -4},
	}})
	uiPushProto(t, m.url()+"/metrics/job/api-canary/instance/"+m.name, native)
	// A push rejected by the consistency check (a counter where the
	// backup job pushed a gauge): the group shows "last push failed".
	if code, body, err := httpDo("PUT", m.url()+"/metrics/job/report", "# TYPE backup_duration_seconds counter\nbackup_duration_seconds 1\n"); err != nil || code != 400 {
		t.Fatalf("inconsistent push: %d %v %s", code, err, body)
	}
	m.push("/metrics/job/delete-me/instance/tmp", "# HELP scratch_value A group the test deletes.\n# TYPE scratch_value gauge\nscratch_value 1\n")
}

// TestUIBrowser drives the web UI of a 3-node cluster with headless
// Chromium: no console errors, nothing fetched from another origin, a
// pushed group is shown and "Delete group" removes it on every node, the
// selector box selects and "Delete all matching" removes the selection on
// every node, the cluster page lists the three members. It keeps screenshots in docs/.
func TestUIBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	chromium := uiChromium(t)
	nodes, _ := startThree(t)
	uiPushDemo(t, nodes[1])
	assertSameState(t, nodes...)
	base := nodes[0].url()

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	b := &uiBrowser{}
	console := chromedp.Console(bctx)
	requests := chromedp.Events(bctx, network.RequestWillBeSent)
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.requests = append(b.requests, ev.Request.Method+" "+ev.Request.URL)
			b.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, string(ev.Type)+": "+ev.Message)
			b.mu.Unlock()
			// Accept the confirm(); anything else (an alert reporting a
			// failure) is recorded above and fails the test below.
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: ev.Type == page.DialogTypeConfirm})
		}
	}()
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	count := func(selector string) int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, selector)))
		if err != nil {
			t.Fatalf("count %s: %v", selector, err)
		}
		return n
	}

	// The metrics page shows every pushed group, the failed push and the
	// values of each family type.
	deleteButton := chromedp.CSS(`button[data-group^='job="delete-me"']`)
	run("load /", chromedp.Navigate(base+"/"), chromedp.WaitVisible(deleteButton))
	if n := count(".group"); n != 5 {
		t.Fatalf("%d groups on the page, want 5", n)
	}
	text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`job="nightly-backup"`, "last push failed", "backup_files_total", "How long the last backup took.",
		"le 0.5", "φ 0.99", "native histogram", "Delete group", "Delete all groups"} {
		if !strings.Contains(text, want) {
			t.Fatalf("page text lacks %q:\n%s", want, text)
		}
	}

	// The search box filters groups client-side.
	run("filter", chromedp.SendKeys(chromedp.ID("group-filter"), "job=etl"))
	if n := count(".group:not(.hidden)"); n != 1 {
		t.Fatalf("filter job=etl shows %d groups, want 1", n)
	}
	if loc, err := chromedp.Run(bctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/?q=job%3Detl") {
		t.Fatalf("the filter is not kept in the URL: %q %v", loc, err)
	}
	// ?q= filters on load; a bare term matches label names and values.
	run("filter from URL", chromedp.Navigate(base+"/?q=DB1"), chromedp.WaitVisible(chromedp.ID("group-filter")))
	if n := count(".group:not(.hidden)"); n != 1 {
		t.Fatalf("filter DB1 shows %d groups, want 1", n)
	}
	run("reset filter", chromedp.Navigate(base+"/"), chromedp.WaitVisible(deleteButton))
	run("collapse all", chromedp.Click(chromedp.CSS(`button[data-toggle-all="close"]`)))
	if n := count(".group[open]"); n != 0 {
		t.Fatalf("%d groups open after Collapse all", n)
	}
	run("expand all", chromedp.Click(chromedp.CSS(`button[data-toggle-all="open"]`)))
	if n := count(".group[open]"); n != 5 {
		t.Fatalf("%d groups open after Expand all, want 5", n)
	}

	// "Delete group" asks, deletes through this node and reloads; the
	// group is then gone on every node.
	run("delete group", chromedp.Click(deleteButton), chromedp.WaitNotPresent(deleteButton), chromedp.WaitVisible(chromedp.ID("group-filter")))
	if n := count(".group"); n != 4 {
		t.Fatalf("%d groups after the delete, want 4", n)
	}
	for _, m := range nodes {
		eventually(t, "the deleted group gone on "+m.name, 10*time.Second, func() bool {
			js := m.get("/api/v1/metrics")
			return !strings.Contains(js, "delete-me") && strings.Contains(js, "nightly-backup")
		})
	}
	if _, _, d := b.snapshot(); len(d) != 1 || !strings.Contains(d[0], `confirm: Delete the group {job="delete-me", instance="tmp"}`) {
		t.Fatalf("dialogs: %q", d)
	}

	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		uiKeepScreenshot(t, name, png)
	}
	shot("ui-metrics.png")

	// The selector box selects on the server; "Delete all matching" asks
	// with the dry run's count, deletes in one log entry and reloads; the
	// groups are then gone on every node. Groups show "expires in" and who
	// pushed them.
	for _, branch := range []string{"feature-a", "feature-b", "main"} {
		if code, body, err := httpDoHeader("PUT", nodes[2].url()+"/metrics/job/ci-build/branch/"+branch, "ci_duration_seconds 12\n",
			"X-Pushgateway-Expire-After", "2h"); err != nil || code != 200 {
			t.Fatalf("push ci-build/%s: %d %v %s", branch, code, err, body)
		}
	}
	eventually(t, "the ci-build groups on "+nodes[0].name, 10*time.Second, func() bool {
		js := nodes[0].get("/api/v1/metrics")
		return strings.Contains(js, `"feature-a"`) && strings.Contains(js, `"feature-b"`) && strings.Contains(js, `"branch":"main"`)
	})
	deleteMatching := chromedp.ID("delete-matching")
	run("select", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("selector")),
		chromedp.SendKeys(chromedp.ID("selector"), `{job="ci-build", branch=~"feature-.*"}`+"\n"), chromedp.WaitVisible(deleteMatching))
	if n := count(".group"); n != 2 {
		t.Fatalf("%d groups selected, want 2", n)
	}
	text, err = chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 of 7 groups match", "expires in ", "by 127.0.0.1:", `branch="feature-b"`} {
		if !strings.Contains(text, want) {
			t.Fatalf("selected page lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, `branch="main"`) || strings.Contains(text, "Delete all groups") {
		t.Fatalf("selected page shows more than the selection:\n%s", text)
	}
	run("delete all matching", chromedp.Click(deleteMatching), chromedp.WaitVisible(chromedp.ID("no-match")))
	for _, m := range nodes {
		eventually(t, "the selected groups gone on "+m.name, 10*time.Second, func() bool {
			js := m.get("/api/v1/metrics")
			return !strings.Contains(js, "feature-") && strings.Contains(js, `"branch":"main"`)
		})
	}
	if _, _, d := b.snapshot(); len(d) != 2 || !strings.Contains(d[1], `confirm: Delete the 2 groups matching {job="ci-build", branch=~"feature-.*"} on every node?`) {
		t.Fatalf("dialogs: %q", d)
	}
	// A selector that does not parse: the parser's message, no group.
	run("bad selector", chromedp.Navigate(base+"/?match[]="+url.QueryEscape(`{job="ci-build"`)), chromedp.WaitVisible(chromedp.ID("selector-error")))
	if n := count(".group"); n != 0 {
		t.Fatalf("%d groups shown for a bad selector", n)
	}

	// The status page: build information and flags.
	run("load /status", chromedp.Navigate(base+"/status"), chromedp.WaitVisible(chromedp.ID("flags")))
	if text, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("flags"))); err != nil || !strings.Contains(text, "cluster.bootstrap-expect") {
		t.Fatalf("flags: %v %q", err, text)
	}
	shot("ui-status.png")

	// The cluster page lists the three members, one of them the leader.
	run("load /cluster", chromedp.Navigate(base+"/cluster"), chromedp.WaitVisible(chromedp.ID("members")))
	if n := count("#members tr[data-member]"); n != 3 {
		t.Fatalf("%d member rows, want 3", n)
	}
	if n := count("#members .badge.ok:not(:empty)"); n < 4 { // three "alive", one "leader"
		t.Fatalf("%d ok badges, want 3 alive + 1 leader", n)
	}
	shot("ui-cluster.png")

	// The nav bar reaches every page.
	run("nav", chromedp.Click(chromedp.CSS(`nav a[href="/"]`)), chromedp.WaitVisible(chromedp.ID("group-filter")))

	consoleMsgs, reqs, dialogsSeen := b.snapshot()
	for _, m := range consoleMsgs {
		// The page of a bad selector is a 400 on purpose; Chromium logs it.
		badSelectorPage := strings.Contains(m.URL, "/?match[]=") && strings.Contains(m.String(), "400")
		if (m.Type == chromedp.ConsoleError || m.IsException()) && !badSelectorPage {
			t.Errorf("console %s (%s:%d)", m, m.URL, m.Line)
		} else {
			t.Logf("console %s", m)
		}
	}
	// Offline: every request went to the node that served the page.
	for _, r := range reqs {
		_, raw, _ := strings.Cut(r, " ")
		u, err := url.Parse(raw)
		if err != nil || u.Host != nodes[0].web {
			t.Errorf("request to another origin: %s", r)
		}
	}
	if len(reqs) < 10 || len(dialogsSeen) != 2 {
		t.Fatalf("%d requests, dialogs %q", len(reqs), dialogsSeen)
	}
}

// uiKeepScreenshot writes docs/<name> when UPDATE_SCREENSHOTS=1 or when it
// does not exist yet, so that ordinary runs leave the tree alone.
func uiKeepScreenshot(t *testing.T, name string, png []byte) {
	t.Helper()
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("%s is not a PNG", name)
	}
	path := filepath.Join("..", "docs", name)
	if _, err := os.Stat(path); err == nil && os.Getenv("UPDATE_SCREENSHOTS") != "1" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}
