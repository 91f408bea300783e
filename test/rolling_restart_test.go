package test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// readinessLog records every failed /-/ready probe of every member, with
// the time the probe was sent.
type readinessLog struct {
	mu       sync.Mutex
	failures []readinessFailure
	probes   atomic.Int64
}

type readinessFailure struct {
	node   string
	sent   time.Time
	answer string
}

// poll probes one member every 10 ms until stop is closed.
func (l *readinessLog) poll(m *member, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
		sent := time.Now()
		resp, err := client.Get(m.url() + "/-/ready")
		answer := ""
		if err != nil {
			answer = err.Error()
		} else {
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				answer = resp.Status + ": " + strings.TrimSpace(string(b))
			}
			resp.Body.Close()
		}
		l.probes.Add(1)
		if answer != "" {
			l.mu.Lock()
			l.failures = append(l.failures, readinessFailure{node: m.name, sent: sent, answer: answer})
			l.mu.Unlock()
		}
	}
}

// restartWindow is the time a member was being restarted: from just before
// SIGTERM until every member was ready again.
type restartWindow struct {
	node       string
	start, end time.Time
}

// writer pushes a new group and overwrites one shared group, one write at a
// time, through the members in turn. A write that is not acknowledged
// (connection refused, 503, 504) is sent again, to the next member, until
// one acknowledges it, as a client with retries does; writes are
// idempotent, so that is safe.
type writer struct {
	members []*member
	acked   atomic.Int64
	retries atomic.Int64
	maxWait atomic.Int64 // longest time until a write was acknowledged, ns
	failed  atomic.Value // string: a write never acknowledged
}

func (w *writer) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for i, target := 0, 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		body := fmt.Sprintf("rolling_seq %d\n", i)
		start := time.Now()
		for _, path := range []string{fmt.Sprintf("/metrics/job/rolling/instance/w%d", i), "/metrics/job/rolling-last"} {
			for {
				m := w.members[target%len(w.members)]
				code, resp, err := httpDo("PUT", m.url()+path, body)
				if err == nil && code == 200 {
					break
				}
				w.retries.Add(1)
				target++
				if time.Since(start) > 60*time.Second {
					w.failed.Store(fmt.Sprintf("write %d (%s) not acknowledged within 60 s; last answer from %s: %d %v %s", i, path, m.name, code, err, strings.TrimSpace(resp)))
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if d := int64(time.Since(start)); d > w.maxWait.Load() {
			w.maxWait.Store(d)
		}
		w.acked.Store(int64(i + 1))
		target++
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRollingRestart restarts the members of a three-process cluster one at
// a time (SIGTERM, start, wait until every member is ready), leader
// included, while a writer keeps pushing and every member's /-/ready is
// probed every 10 ms: no acknowledged write is lost, and only the member
// being restarted ever fails its readiness probe.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process rolling restart")
	}
	nodes, firstLeader := startThree(t)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	rl := &readinessLog{}
	for _, m := range nodes {
		wg.Add(1)
		go rl.poll(m, stop, &wg)
	}
	w := &writer{members: nodes}
	wg.Add(1)
	go w.run(stop, &wg)
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopAll()

	// Restart in name order; the first leader is among them, and the
	// leader of each moment is restarted too when its turn comes.
	var windows []restartWindow
	leadersRestarted := 0
	for round := 0; round < 2; round++ {
		for _, m := range nodes {
			time.Sleep(time.Second) // writes flow with every member up
			before := w.acked.Load()
			if v, ok := m.cluster(); ok && v.Leader == m.name {
				leadersRestarted++
			}
			win := restartWindow{node: m.name, start: time.Now()}
			m.stop()
			m.start(3, nodes...)
			waitReady(t, nodes...)
			win.end = time.Now()
			windows = append(windows, win)
			t.Logf("restarted %s in %v; %d writes acknowledged meanwhile", m.name, win.end.Sub(win.start).Round(time.Millisecond), w.acked.Load()-before)
			if f, _ := w.failed.Load().(string); f != "" {
				t.Fatal(f)
			}
		}
	}
	time.Sleep(time.Second)
	stopAll()
	if f, _ := w.failed.Load().(string); f != "" {
		t.Fatal(f)
	}
	if leadersRestarted == 0 {
		t.Fatalf("the leader (first %s) was never restarted", firstLeader)
	}

	// Readiness: a failed probe is only allowed for the member being
	// restarted, from SIGTERM (a probe sent up to 100 ms before still
	// counts) until every member was ready again.
	var stray []string
	for _, f := range rl.failures {
		ok := false
		for _, win := range windows {
			if win.node == f.node && !f.sent.Before(win.start.Add(-100*time.Millisecond)) && !f.sent.After(win.end) {
				ok = true
			}
		}
		if !ok {
			stray = append(stray, fmt.Sprintf("%s at %s: %s", f.node, f.sent.Format("15:04:05.000"), f.answer))
		}
	}
	if len(stray) > 0 {
		t.Fatalf("/-/ready failed on a member that was not being restarted (%d of %d probes):\n%s", len(stray), rl.probes.Load(), strings.Join(stray, "\n"))
	}

	// No acknowledged write is lost, and every member has the same state.
	acked := w.acked.Load()
	t.Logf("%d writes acknowledged, %d attempts retried, slowest acknowledgement %v, %d readiness probes (%d failed, all on the member being restarted)",
		acked, w.retries.Load(), time.Duration(w.maxWait.Load()).Round(time.Millisecond), rl.probes.Load(), len(rl.failures))
	if acked < 50 {
		t.Fatalf("only %d writes acknowledged: the writer stalled", acked)
	}
	assertSameState(t, nodes...)
	for _, m := range nodes {
		expo := m.get("/metrics")
		for i := int64(0); i < acked; i++ {
			if !strings.Contains(expo, fmt.Sprintf("rolling_seq{instance=\"w%d\",job=\"rolling\"} %d\n", i, i)) {
				t.Fatalf("%s lost acknowledged write %d", m.name, i)
			}
		}
		// The shared group holds the last acknowledged write (or the
		// one after it, sent but not yet acknowledged when stopped).
		last := fmt.Sprintf("rolling_seq{instance=\"\",job=\"rolling-last\"} %d\n", acked-1)
		next := fmt.Sprintf("rolling_seq{instance=\"\",job=\"rolling-last\"} %d\n", acked)
		if !strings.Contains(expo, last) && !strings.Contains(expo, next) {
			t.Fatalf("%s: shared group does not hold the last acknowledged write %d", m.name, acked-1)
		}
	}
}
