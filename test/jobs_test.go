package test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/procs"
)

// jobPython is the interpreter the Python example is run with: Debian's,
// where python3-prometheus-client installs the module.
const jobPython = "/usr/bin/python3"

// jobCheck is one expected sample of a pushed group and a test of its value
// (an empty string means the value is fine).
type jobCheck struct {
	name  string
	check func(v float64) string
}

// jobGroup is one group a job pushes: its exact labels and samples.
type jobGroup struct {
	labels map[string]string
	checks []jobCheck
}

// TestBatchJobsAgainstEveryNode runs the example batch jobs under examples/
// as real subprocesses, each against another node of a 3-process cluster,
// and checks that every node then serves every job's metrics.
func TestBatchJobsAgainstEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster test running external jobs")
	}
	for _, tool := range []string{"bash", "curl", "tar", "hostname"} {
		if _, err := exec.LookPath(tool); err != nil {
			jobSkipOrFail(t, fmt.Sprintf("%s not found (%v)", tool, err))
		}
	}
	pyHTTP, pyClient := "", ""
	if _, err := os.Stat(jobPython); err != nil {
		pyHTTP = fmt.Sprintf("%s not found (%v); apt-get install python3", jobPython, err)
		pyClient = pyHTTP
	} else if out, err := exec.Command(jobPython, "-c", "import prometheus_client").CombinedOutput(); err != nil {
		pyClient = fmt.Sprintf("%s cannot import prometheus_client (%v: %s); apt-get install python3-prometheus-client",
			jobPython, err, strings.TrimSpace(string(out)))
	}

	gojob, err := procs.Build(t.TempDir(), "./examples/gojob")
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}

	nodes, leader := startThree(t)
	t.Logf("leader is %s; the jobs write through node1, node2 and node3", leader)
	begin := time.Now()

	duration := func(v float64) string {
		// A simulated failure fails at once: backup.sh's millisecond
		// rounding can make its duration 0.000.
		if v < 0 || v > 30 {
			return "want a duration in [0, 30] seconds"
		}
		return ""
	}
	recent := func(v float64) string {
		// backup.sh pushes whole seconds.
		if v < float64(begin.Unix()-1) || v > float64(time.Now().Unix()+1) {
			return fmt.Sprintf("want a Unix time between %d and now", begin.Unix())
		}
		return ""
	}
	equals := func(want float64) func(float64) string {
		return func(v float64) string {
			if v != want {
				return fmt.Sprintf("want %g", want)
			}
			return ""
		}
	}
	var want []jobGroup
	expect := func(labels map[string]string, prefix string, checks ...jobCheck) {
		for i := range checks {
			checks[i].name = prefix + checks[i].name
		}
		want = append(want, jobGroup{labels: labels, checks: checks})
	}

	runJob := func(name string, fn func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}

	runJob("backup.sh→node1", func(t *testing.T) {
		jobRun(t, 0, []string{"PUSHGATEWAY_URL=" + nodes[0].url(), "SIMULATE_FAILURE="}, "bash", "examples/backup.sh")
		expect(map[string]string{"job": "backup", "instance": host}, "backup_",
			jobCheck{"duration_seconds", duration},
			jobCheck{"last_success_timestamp_seconds", recent},
			jobCheck{"success", equals(1)})
	})
	pyGroup := func(mode string) {
		expect(map[string]string{"job": "pyjob", "instance": host, "mode": mode}, "pyjob_",
			jobCheck{"duration_seconds", duration},
			jobCheck{"last_success_timestamp_seconds", recent},
			jobCheck{"records_processed", equals(100)})
	}
	runJob("push_job.py_client→node2", func(t *testing.T) {
		if pyClient != "" {
			jobSkipOrFail(t, pyClient)
		}
		jobRun(t, 0, nil, jobPython, "examples/push_job.py", "client", nodes[1].url())
		pyGroup("client")
	})
	runJob("push_job.py_http→node3", func(t *testing.T) {
		if pyHTTP != "" {
			jobSkipOrFail(t, pyHTTP)
		}
		jobRun(t, 0, nil, jobPython, "examples/push_job.py", "http", nodes[2].url())
		pyGroup("http")
	})
	runJob("gojob→node1", func(t *testing.T) {
		jobRun(t, 0, nil, gojob, "-url", nodes[0].url())
		expect(map[string]string{"job": "gojob", "instance": host}, "gojob_",
			jobCheck{"duration_seconds", duration},
			jobCheck{"last_success_timestamp_seconds", recent},
			jobCheck{"records_processed", equals(100)})
	})
	end := time.Now()

	assertSameState(t, nodes...)
	var lastBackup float64
	for _, m := range nodes {
		fams := jobScrape(t, m)
		for _, g := range want {
			pushed := jobValue(fams, "push_time_seconds", g.labels)
			if math.IsNaN(pushed) || pushed < float64(begin.Unix()) || pushed > float64(end.Unix()+1) {
				t.Errorf("%s: push_time_seconds%s = %v, want the time of the push", m.name, jobLabels(g.labels), pushed)
			}
			if v := jobValue(fams, "push_failure_time_seconds", g.labels); v != 0 {
				t.Errorf("%s: push_failure_time_seconds%s = %v, want 0", m.name, jobLabels(g.labels), v)
			}
			for _, c := range g.checks {
				v := jobValue(fams, c.name, g.labels)
				if math.IsNaN(v) {
					t.Errorf("%s: no %s%s in /metrics", m.name, c.name, jobLabels(g.labels))
				} else if problem := c.check(v); problem != "" {
					t.Errorf("%s: %s%s = %v: %s", m.name, c.name, jobLabels(g.labels), v, problem)
				}
			}
		}
		lastBackup = jobValue(fams, "backup_last_success_timestamp_seconds", want[0].labels)
	}
	if t.Failed() {
		t.FailNow()
	}

	// A failing backup, through another node, pushes success=0 and its
	// duration with a POST: the last success timestamp must survive.
	runJob("backup.sh_failing→node2", func(t *testing.T) {
		jobRun(t, 1, []string{"PUSHGATEWAY_URL=" + nodes[1].url(), "SIMULATE_FAILURE=1"}, "bash", "examples/backup.sh")
	})
	assertSameState(t, nodes...)
	for _, m := range nodes {
		fams := jobScrape(t, m)
		labels := want[0].labels
		if v := jobValue(fams, "backup_success", labels); v != 0 {
			t.Errorf("%s: backup_success after a failed backup = %v, want 0", m.name, v)
		}
		if v := jobValue(fams, "backup_duration_seconds", labels); duration(v) != "" {
			t.Errorf("%s: backup_duration_seconds after a failed backup = %v", m.name, v)
		}
		if v := jobValue(fams, "backup_last_success_timestamp_seconds", labels); v != lastBackup {
			t.Errorf("%s: backup_last_success_timestamp_seconds = %v after a failed backup, want it kept at %v", m.name, v, lastBackup)
		}
	}
}

// jobSkipOrFail skips the (sub)test, or fails it when CI is set: CI must
// have everything the examples need.
func jobSkipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "" {
		t.Skip(why)
	}
	t.Fatal("CI is set but " + why)
}

// jobRun runs argv in the repository root with the extra environment and
// fails t unless it exits with wantCode within a minute.
func jobRun(t *testing.T, wantCode int, env []string, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if code != wantCode {
		t.Fatalf("%s %s: exit %d (%v), want %d; output:\n%s", strings.Join(env, " "), strings.Join(argv, " "), code, err, wantCode, out)
	}
	t.Logf("%s: exit %d after %v %s", strings.Join(argv, " "), code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
}

// jobScrape GETs /metrics from m and parses it.
func jobScrape(t *testing.T, m *member) map[string]*dto.MetricFamily {
	t.Helper()
	body := m.get("/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics of %s: %v\n%s", m.name, err, body)
	}
	return fams
}

// jobValue is the value of the sample name with exactly these labels, NaN
// when there is none.
func jobValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	fam := fams[name]
	if fam == nil {
		return math.NaN()
	}
	for _, m := range fam.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Untyped != nil:
			return m.GetUntyped().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		}
	}
	return math.NaN()
}

// jobLabels formats labels as {a="x",b="y"}.
func jobLabels(labels map[string]string) string {
	var parts []string
	for k, v := range labels {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
