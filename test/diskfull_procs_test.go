package test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it when the test ends (also when it fails). It skips the test when this
// process may not mount (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for the full-disk test (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// freeOn returns the free bytes of the filesystem holding dir.
func freeOn(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestFullDiskRefusesWritesKeepsReadsAndRecovers: a node on a small tmpfs
// takes pushes until its free space falls below --storage.min-free-bytes;
// from then pushes get 507 naming the cause while reads, health, readiness
// (which says why writes fail) and the UI go on; once space is back the
// node takes writes again by itself; after kill -9 nothing acknowledged is
// lost.
func TestFullDiskRefusesWritesKeepsReadsAndRecovers(t *testing.T) {
	const reserve = 8 << 20
	fs := mountTmpfs(t, 40<<20)
	m := newMember(t, "disk")
	m.dir = filepath.Join(fs, "data")
	m.extra = []string{"--storage.min-free-bytes=8MiB"}
	m.start(1)
	waitReady(t, m)

	// Leave about 2 MiB above the reserve, with a file the test removes
	// later to give the space back.
	filler := filepath.Join(fs, "filler")
	if err := os.WriteFile(filler, make([]byte, freeOn(t, fs)-reserve-2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	const body = "x{i=\"%d\"} 1\n"
	var acked []string
	var refusal string
	for i := 0; i < 5000 && refusal == ""; i++ {
		var b strings.Builder
		for j := range 500 {
			fmt.Fprintf(&b, body, j)
		}
		job := fmt.Sprintf("fill%d", i)
		code, resp, err := httpDo("PUT", m.url()+"/metrics/job/"+job, b.String())
		switch {
		case err != nil:
			t.Fatalf("push %d: %v (the node must answer, not drop the connection)", i, err)
		case code == http.StatusOK:
			acked = append(acked, job)
		case code == http.StatusInsufficientStorage:
			refusal = resp
		default:
			t.Fatalf("push %d: %d %s", i, code, resp)
		}
	}
	if refusal == "" || !strings.Contains(refusal, "--storage.min-free-bytes") || len(acked) == 0 {
		t.Fatalf("no 507 naming the reserve after %d acknowledged pushes: %q", len(acked), refusal)
	}
	if !m.running() {
		t.Fatal("the node died")
	}
	// Reads, health, readiness and the UI go on; readiness says why writes fail.
	metrics := m.get("/metrics")
	for _, job := range acked {
		if !strings.Contains(metrics, `job="`+job+`"`) {
			t.Fatalf("acknowledged push %s missing from /metrics", job)
		}
	}
	if !strings.Contains(metrics, "pushgateway_storage_writes_refused 1") {
		t.Fatal("pushgateway_storage_writes_refused is not 1")
	}
	if ready := m.get("/-/ready"); !strings.Contains(ready, "writes refused") {
		t.Fatalf("/-/ready does not say why writes fail: %q", ready)
	}
	m.get("/-/healthy")
	m.get("/")
	m.get("/cluster")
	eventually(t, "a log line about the refused writes", 10*time.Second, func() bool {
		return strings.Contains(m.out.String(), "refusing writes: free space of --storage.path is below --storage.min-free-bytes")
	})

	// Space comes back: writes resume without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a push is accepted again", 20*time.Second, func() bool {
		code, _, err := httpDo("PUT", m.url()+"/metrics/job/after", "y 1\n")
		return err == nil && code == http.StatusOK
	})
	acked = append(acked, "after")
	eventually(t, "a log line about writes resuming", 10*time.Second, func() bool {
		return strings.Contains(m.out.String(), "taking writes again")
	})

	// Nothing acknowledged is lost across kill -9.
	m.kill()
	m.start(1)
	waitReady(t, m)
	metrics = m.get("/metrics")
	for _, job := range acked {
		if !strings.Contains(metrics, `job="`+job+`"`) {
			t.Fatalf("acknowledged push %s lost after a restart", job)
		}
	}
}

// TestMemberWithAFullDiskStopsGrowingWritesEverywhere: in three processes,
// one member's storage falls below its reserve; since every entry goes to
// every member's log, pushes through any node get 507 naming that member,
// deletes still pass, and pushes resume once it has room.
func TestMemberWithAFullDiskStopsGrowingWritesEverywhere(t *testing.T) {
	const reserve = 8 << 20
	fs := mountTmpfs(t, 24<<20)
	ms := []*member{newMember(t, "d1"), newMember(t, "d2"), newMember(t, "small")}
	small := ms[2]
	small.dir = filepath.Join(fs, "data")
	for _, m := range ms {
		m.extra = []string{"--storage.min-free-bytes=8MiB"}
		m.start(3, ms[0])
	}
	waitReady(t, ms...)
	ms[0].push("/metrics/job/before", "x 1\n")

	filler := filepath.Join(fs, "filler")
	if err := os.WriteFile(filler, make([]byte, freeOn(t, fs)-reserve+1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		eventually(t, "a push via "+m.name+" refused for the small disk", 20*time.Second, func() bool {
			code, body, err := httpDo("PUT", m.url()+"/metrics/job/refused", "x 1\n")
			return err == nil && code == http.StatusInsufficientStorage && strings.Contains(body, "small")
		})
	}
	// A refused push changes nothing.
	before := assertSameState(t, ms...)
	for _, m := range ms {
		if code, body, err := httpDo("PUT", m.url()+"/metrics/job/refused2", "x 1\n"); err != nil || code != http.StatusInsufficientStorage {
			t.Fatalf("push via %s while storage is short: %d %v %s", m.name, code, err, body)
		}
	}
	if after := assertSameState(t, ms...); after != before {
		t.Fatalf("a refused push changed the state: %s", after)
	}
	if code, body, err := httpDo("DELETE", ms[1].url()+"/metrics/job/before", ""); err != nil || code != http.StatusAccepted {
		t.Fatalf("a delete while storage is short: %d %v %s", code, err, body)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pushes accepted again", 20*time.Second, func() bool {
		code, _, err := httpDo("PUT", ms[0].url()+"/metrics/job/after", "x 1\n")
		return err == nil && code == http.StatusOK
	})
	state := assertSameState(t, ms...)
	if strings.Contains(state, `"refused2"`) || strings.Contains(state, `"before"`) || !strings.Contains(state, `"after"`) {
		t.Fatalf("state: %s", state)
	}
}
