package test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// startOursIn starts a one-node pushgateway-cluster on the given storage
// path (so that it can be restarted on the same state).
func startOursIn(t *testing.T, storage string, extra ...string) *proc {
	t.Helper()
	return startProc(t, "ours", func() (string, []string) {
		addr := testutil.FreeAddr(t)
		return addr, append([]string{
			"--web.listen-address=" + addr,
			"--storage.path=" + storage,
			"--raft.listen-address=" + testutil.FreeAddr(t),
			"--cluster.listen-address=" + testutil.FreeAddr(t),
			"--cluster.node-name=n1",
		}, extra...)
	}, ourBinary)
}

// stopGracefully sends SIGTERM and waits for the exit.
func (p *proc) stopGracefully(t *testing.T) {
	t.Helper()
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// apiGroups returns the groups of /api/v1/metrics as canonical JSON,
// sorted (upstream lists them in map order). Nothing else is normalised:
// timestamps and values must be equal.
func apiGroups(t *testing.T, base string) []string {
	t.Helper()
	b, err := get(newClient(), base+"/api/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Status string           `json:"status"`
		Data   []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Status != "success" {
		t.Fatalf("/api/v1/metrics of %s: %v %s", base, err, b)
	}
	var out []string
	for _, g := range doc.Data {
		c, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(c))
	}
	sort.Strings(out)
	return out
}

// pushedExposition returns the text exposition of the families that hold
// pushed (job-labelled) samples, HELP and TYPE lines included, values
// untouched.
func pushedExposition(t *testing.T, base string) []string {
	t.Helper()
	b, err := get(newClient(), base+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var out, fam []string
	hasJob := false
	flush := func() {
		if hasJob {
			out = append(out, fam...)
		}
		fam, hasJob = nil, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "# HELP ") || (strings.HasPrefix(line, "# TYPE ") && (len(fam) == 0 || !strings.HasPrefix(fam[len(fam)-1], "# HELP "))) {
			flush()
		}
		if strings.Contains(line, `job="`) {
			hasJob = true
		}
		fam = append(fam, line)
	}
	flush()
	return out
}

// TestMigrationFromUpstream writes a persistence file with Debian's real
// upstream Pushgateway and imports it into our binary: the groups, values
// and push timestamps served afterwards are exactly what upstream served.
func TestMigrationFromUpstream(t *testing.T) {
	requireUpstream(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "pushgateway.db")
	up := startProc(t, "upstream", func() (string, []string) {
		addr := testutil.FreeAddr(t)
		return addr, []string{"--web.listen-address=" + addr, "--persistence.file=" + file, "--persistence.interval=1s"}
	}, upstreamBinary)

	c := newClient()
	for _, s := range []step{
		put("counter with help and grouping labels", "/metrics/job/backup/instance/db1/site/eu",
			"# HELP backup_bytes_total Bytes written.\n# TYPE backup_bytes_total counter\nbackup_bytes_total{disk=\"a\"} 1234\nbackup_bytes_total{disk=\"b\"} 5.5\n", 200),
		put("gauge and untyped", "/metrics/job/batch", "# TYPE batch_last_success gauge\nbatch_last_success 1.7e+09\nbatch_records 42\n", 200),
		put("histogram", "/metrics/job/latency/instance/api",
			"# HELP req_seconds Request latency.\n# TYPE req_seconds histogram\nreq_seconds_bucket{le=\"0.1\"} 3\nreq_seconds_bucket{le=\"1\"} 7\nreq_seconds_bucket{le=\"+Inf\"} 9\nreq_seconds_sum 4.25\nreq_seconds_count 9\n", 200),
		put("summary", "/metrics/job/latency/instance/worker",
			"# TYPE job_seconds summary\njob_seconds{quantile=\"0.5\"} 0.2\njob_seconds{quantile=\"0.99\"} 1.5\njob_seconds_sum 12\njob_seconds_count 40\n", 200),
		post("POST adds a family later", "/metrics/job/batch", "# TYPE batch_errors counter\nbatch_errors 2\n", 200),
		put("base64 job and slash in a value", "/metrics/job@base64/bXkvam9i/path@base64/L3Zhci90bXA", "weird 1\n", 200),
		put("group to delete", "/metrics/job/gone", "gone 1\n", 200),
		del("delete it", "/metrics/job/gone", 202),
		put("rejected push records its failure", "/metrics/job/batch", "batch_records 43 1000\n", 400),
	} {
		r, err := send(c, up.url, s)
		if err != nil || r.status != s.want {
			t.Fatalf("%s: %d %v %s", s.name, r.status, err, r.body)
		}
		time.Sleep(5 * time.Millisecond) // distinct push times
	}
	var wantGroups, wantExpo []string
	eventually(t, "upstream applied the delete", 5*time.Second, func() bool {
		wantGroups = apiGroups(t, up.url)
		return len(wantGroups) == 5
	})
	wantExpo = pushedExposition(t, up.url)
	if !strings.Contains(strings.Join(wantExpo, "\n"), `push_failure_time_seconds{instance="",job="batch"} 1.`) {
		t.Fatalf("the rejected push left no failure time upstream:\n%s", strings.Join(wantExpo, "\n"))
	}
	up.stopGracefully(t) // upstream persists on shutdown
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("upstream wrote no persistence file: %v", err)
	}

	storage := t.TempDir()
	our := startOursIn(t, storage, "--persistence.file="+file)
	if got := apiGroups(t, our.url); strings.Join(got, "\n") != strings.Join(wantGroups, "\n") {
		t.Fatalf("/api/v1/metrics after import differs (- upstream, + ours):\n%s", lineDiff(wantGroups, got))
	}
	if got := pushedExposition(t, our.url); strings.Join(got, "\n") != strings.Join(wantExpo, "\n") {
		t.Fatalf("/metrics after import differs (- upstream, + ours):\n%s", lineDiff(wantExpo, got))
	}
	if !strings.Contains(our.stderr.String(), "imported the upstream persistence file") {
		t.Fatalf("no import logged:\n%s", our.stderr)
	}
	// The imported state is live: a consistent push is taken, a
	// conflicting one refused.
	for _, s := range []step{
		put("fits the imported counter", "/metrics/job/backup/instance/db2", "# TYPE backup_bytes_total counter\nbackup_bytes_total 1\n", 200),
		put("conflicts with the imported counter", "/metrics/job/other", "# TYPE backup_bytes_total gauge\nbackup_bytes_total 1\n", 400),
	} {
		if r, err := send(c, our.url, s); err != nil || r.status != s.want {
			t.Fatalf("%s: %d %v %s", s.name, r.status, err, r.body)
		}
	}

	// Started again with the flag: no second import. Wiped and started
	// again: still none (the import record survives the wipe).
	our.stopGracefully(t)
	our = startOursIn(t, storage, "--persistence.file="+file, "--web.enable-admin-api")
	if n := len(apiGroups(t, our.url)); n != 7 {
		t.Fatalf("%d groups after restart, want the 5 imported, 1 pushed and 1 created by the rejected push", n)
	}
	if r, err := send(c, our.url, step{method: http.MethodPut, path: "/api/v1/admin/wipe"}); err != nil || r.status != 202 {
		t.Fatalf("wipe: %v %v", r, err)
	}
	our.stopGracefully(t)
	our = startOursIn(t, storage, "--persistence.file="+file)
	if n := len(apiGroups(t, our.url)); n != 0 {
		t.Fatalf("%d groups after wipe and restart: imported twice", n)
	}
	if !strings.Contains(our.stderr.String(), "the cluster imported before") {
		t.Fatalf("skipped import not logged:\n%s", our.stderr)
	}

	// A cluster that has groups of its own is not overwritten.
	fresh := t.TempDir()
	ours2 := startOursIn(t, fresh)
	if r, err := send(c, ours2.url, put("own group", "/metrics/job/own", "own 1\n", 200)); err != nil || r.status != 200 {
		t.Fatalf("push: %v %v", r, err)
	}
	ours2.stopGracefully(t)
	ours2 = startOursIn(t, fresh, "--persistence.file="+file)
	if got := apiGroups(t, ours2.url); len(got) != 1 || !strings.Contains(got[0], `"job":"own"`) {
		t.Fatalf("import into a non-empty cluster: %v", got)
	}
	if !strings.Contains(ours2.stderr.String(), "the cluster is not empty") {
		t.Fatalf("refused import not logged:\n%s", ours2.stderr)
	}
}
