package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// part is one fault on one victim (or on all nodes, for fullRestart).
type part int

const (
	killLeader part = iota
	killFollower
	pauseLeader
	pauseFollower
	restartLeader
	restartFollower
	partitionLeader
	partitionFollower
	fullRestart
	// damageFollower kills a follower with -9, truncates its log segments and
	// restarts it: it must detect the damage and recover from the others.
	damageFollower
	lastPart = damageFollower
)

func (p part) String() string {
	return [...]string{
		"kill -9 leader", "kill -9 follower", "pause leader", "pause follower",
		"restart leader", "restart follower", "partition leader", "partition follower",
		"full restart", "damage follower storage",
	}[p]
}

func (p part) onLeader() bool {
	return p == killLeader || p == pauseLeader || p == restartLeader || p == partitionLeader
}

func (p part) isPartition() bool { return p == partitionLeader || p == partitionFollower }

// nemesis is one scheduled fault: one or more parts injected together,
// held, then healed together.
type nemesis struct {
	parts []part
	hold  time.Duration
}

func (nm nemesis) name() string {
	var s []string
	for _, p := range nm.parts {
		s = append(s, p.String())
	}
	return strings.Join(s, " + ")
}

func (nm nemesis) needsPartition() bool {
	for _, p := range nm.parts {
		if p.isPartition() {
			return true
		}
	}
	return false
}

// faultRecord is what happened to one nemesis.
type faultRecord struct {
	Name    string
	Victims string
	Detail  string
	At      time.Duration // injected, since the run's start
	Held    time.Duration // from injection to healing
	Recover time.Duration // healing until a write through every node succeeded
	Err     string
	// Unrecovered: the cluster did not become healthy before the fault, or
	// a write through some node still failed 60 s after healing; the
	// schedule stops there.
	Unrecovered bool
	// Cut are the nodes partitioned away from the majority, from CutFrom
	// (every part injected) to CutUntil (healing begins); MinorityRead is
	// what they answered to reads in the middle of the fault.
	Cut          []string
	CutFrom      time.Duration
	CutUntil     time.Duration
	MinorityRead string
}

// shortSchedule is the make test version: three faults.
func shortSchedule(partitions bool) []nemesis {
	s := []nemesis{{parts: []part{killLeader}, hold: 2 * time.Second}}
	if partitions {
		s = append(s, nemesis{parts: []part{partitionLeader}, hold: 4 * time.Second})
	} else {
		s = append(s, nemesis{parts: []part{restartFollower}, hold: time.Second})
	}
	return append(s, nemesis{parts: []part{pauseFollower}, hold: 3 * time.Second},
		nemesis{parts: []part{damageFollower}, hold: 2 * time.Second})
}

// longSchedule is every fault alone, then combined (two nodes out at once
// means no quorum anywhere until healed).
func longSchedule() []nemesis {
	return []nemesis{
		{parts: []part{killLeader}, hold: 2 * time.Second},
		{parts: []part{killFollower}, hold: 2 * time.Second},
		{parts: []part{pauseLeader}, hold: 3 * time.Second},
		{parts: []part{pauseFollower}, hold: 3 * time.Second},
		{parts: []part{restartLeader}, hold: time.Second},
		{parts: []part{restartFollower}, hold: time.Second},
		{parts: []part{partitionFollower}, hold: 5 * time.Second},
		{parts: []part{partitionLeader}, hold: 5 * time.Second},
		{parts: []part{fullRestart}, hold: time.Second},
		{parts: []part{damageFollower}, hold: 2 * time.Second},
		{parts: []part{partitionLeader, killFollower}, hold: 4 * time.Second},
		{parts: []part{pauseLeader, restartFollower}, hold: 3 * time.Second},
		{parts: []part{partitionFollower, killLeader}, hold: 3 * time.Second},
		{parts: []part{pauseFollower, partitionLeader}, hold: 4 * time.Second},
		{parts: []part{killLeader, killFollower}, hold: 2 * time.Second},
	}
}

// parseSchedule reads CHAOS_SCHEDULE: fault names separated by commas,
// parts of a combined fault joined by "+", e.g.
// "partition leader, full restart, kill -9 leader + pause follower".
func parseSchedule(spec string) ([]nemesis, error) {
	byName := map[string]part{}
	holds := map[part]time.Duration{}
	for p := killLeader; p <= lastPart; p++ {
		byName[p.String()] = p
	}
	for _, nm := range longSchedule() {
		if len(nm.parts) == 1 {
			holds[nm.parts[0]] = nm.hold
		}
	}
	var s []nemesis
	for _, item := range strings.Split(spec, ",") {
		var nm nemesis
		for _, name := range strings.Split(item, "+") {
			p, ok := byName[strings.Join(strings.Fields(name), " ")]
			if !ok {
				return nil, fmt.Errorf("unknown fault %q (known: %s)", strings.TrimSpace(name), knownParts())
			}
			nm.parts = append(nm.parts, p)
			nm.hold = max(nm.hold, holds[p])
		}
		s = append(s, nm)
	}
	return s, nil
}

func knownParts() string {
	var names []string
	for p := killLeader; p <= lastPart; p++ {
		names = append(names, p.String())
	}
	return strings.Join(names, ", ")
}

// filterSchedule drops partition faults when partitions are impossible.
func filterSchedule(s []nemesis, partitions bool) (kept []nemesis, dropped []string) {
	for _, nm := range s {
		if nm.needsPartition() && !partitions {
			dropped = append(dropped, nm.name())
			continue
		}
		kept = append(kept, nm)
	}
	return kept, dropped
}

// runNemesis waits for a healthy cluster, injects nm, holds it, heals it
// and measures the time to recover.
func runNemesis(c *cluster, base time.Time, nm nemesis, rng *rand.Rand) faultRecord {
	rec := faultRecord{Name: nm.name()}
	leaderName, err := c.waitHealthy(60 * time.Second)
	if err != nil {
		rec.Err = "before the fault: " + err.Error()
		rec.Unrecovered = true
		return rec
	}
	leader := c.byName(leaderName)
	var followers []*node
	for _, n := range c.nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	rng.Shuffle(len(followers), func(i, j int) { followers[i], followers[j] = followers[j], followers[i] })

	var heals, afterRecovery []func() error
	var victims, details []string
	var cut []*node
	inject := func(p part) error {
		if p == fullRestart {
			var wg sync.WaitGroup
			var mu sync.Mutex
			var errs []string
			for _, n := range c.nodes {
				wg.Add(1)
				go func(n *node) {
					defer wg.Done()
					d, err := n.stopGraceful(30 * time.Second)
					mu.Lock()
					defer mu.Unlock()
					details = append(details, fmt.Sprintf("%s stopped in %v", n.name, d.Round(time.Millisecond)))
					if err != nil {
						errs = append(errs, err.Error())
					}
				}(n)
			}
			wg.Wait()
			victims = append(victims, "all")
			heals = append(heals, func() error {
				for _, n := range c.nodes {
					if err := n.start(); err != nil {
						return err
					}
				}
				return nil
			})
			if len(errs) > 0 {
				return fmt.Errorf("%s", strings.Join(errs, "; "))
			}
			return nil
		}
		var n *node
		if p.onLeader() {
			n = leader
		} else {
			if len(followers) == 0 {
				return fmt.Errorf("no follower left for %v", p)
			}
			n, followers = followers[0], followers[1:]
		}
		victims = append(victims, n.name)
		switch p {
		case killLeader, killFollower:
			if err := n.kill9(); err != nil {
				return err
			}
			heals = append(heals, n.start)
		case pauseLeader, pauseFollower:
			if err := n.signal(syscall.SIGSTOP); err != nil {
				return err
			}
			heals = append(heals, func() error { return n.signal(syscall.SIGCONT) })
		case restartLeader, restartFollower:
			d, err := n.stopGraceful(30 * time.Second)
			details = append(details, fmt.Sprintf("%s stopped in %v", n.name, d.Round(time.Millisecond)))
			heals = append(heals, n.start)
			if err != nil {
				return err
			}
		case damageFollower:
			if err := n.kill9(); err != nil {
				return err
			}
			// Every log segment loses all but its first 12 KiB.
			segments, err := filepath.Glob(filepath.Join(n.dir, "raft", "wal", "*.wal"))
			if err != nil || len(segments) == 0 {
				return fmt.Errorf("no log segment of %s to damage: %v", n.name, err)
			}
			for _, seg := range segments {
				if err := os.Truncate(seg, 3*4096); err != nil {
					return err
				}
			}
			details = append(details, fmt.Sprintf("%s killed, its %d log segments truncated to 12 KiB", n.name, len(segments)))
			heals = append(heals, n.start)
			afterRecovery = append(afterRecovery, func() error {
				// The node takes writes as soon as it has the state; it
				// declares the recovery done when its readiness check
				// next confirms it has caught up.
				deadline := time.Now().Add(30 * time.Second)
				for _, want := range []string{"local raft storage is corrupt", "recovered the raft state from the peers"} {
					for !strings.Contains(n.log.String(), want) {
						if time.Now().After(deadline) {
							return fmt.Errorf("%s did not log %q", n.name, want)
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				return nil
			})
		case partitionLeader, partitionFollower:
			heals = append(heals, c.nw.heal)
			if err := c.nw.partition([]int{n.idx}); err != nil {
				return err
			}
			cut = append(cut, n)
		}
		return nil
	}

	injected := time.Now()
	rec.At = injected.Sub(base)
	var errs []string
	for _, p := range nm.parts {
		if err := inject(p); err != nil {
			errs = append(errs, fmt.Sprintf("inject %v: %v", p, err))
			break
		}
	}
	rec.CutFrom = time.Since(base)
	for _, n := range cut {
		rec.Cut = append(rec.Cut, n.name)
	}
	if len(cut) > 0 && len(errs) == 0 && !c.nw.linkMode {
		// A node cut off from the majority refuses current reads (503)
		// and serves stale ones (?stale) and its own metrics.
		time.Sleep(nm.hold / 2) // the nemesis schedule
		var reads []string
		for _, n := range cut {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, apiCode, apiErr := n.get(ctx, "/api/v1/metrics")
			_, staleCode, staleErr := n.get(ctx, "/api/v1/metrics?stale")
			_, selfCode, _ := n.get(ctx, "/-/metrics")
			_, readyCode, _ := n.get(ctx, "/-/ready")
			cancel()
			reads = append(reads, fmt.Sprintf("%s: /api/v1/metrics %d%s, ?stale %d%s, /-/metrics %d, /-/ready %d",
				n.name, apiCode, errSuffix(apiErr), staleCode, errSuffix(staleErr), selfCode, readyCode))
		}
		rec.MinorityRead = strings.Join(reads, "; ")
		time.Sleep(nm.hold - nm.hold/2)
	} else {
		time.Sleep(nm.hold) // the nemesis schedule: how long the fault lasts
	}
	rec.CutUntil = time.Since(base)
	for i := len(heals) - 1; i >= 0; i-- {
		if err := heals[i](); err != nil {
			errs = append(errs, "heal: "+err.Error())
		}
	}
	healed := time.Now()
	rec.Held = healed.Sub(injected)
	rec.Victims = strings.Join(victims, ",")
	rec.Detail = strings.Join(details, "; ")
	d, err := timeToRecover(c, healed, 60*time.Second)
	rec.Recover = d
	if err != nil {
		errs = append(errs, "recover: "+err.Error())
		rec.Unrecovered = true
	} else {
		for _, check := range afterRecovery {
			if err := check(); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	rec.Err = strings.Join(errs, "; ")
	return rec
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

// healEverything makes sure nothing is left broken: partitions removed,
// paused nodes resumed, stopped nodes started.
func healEverything(c *cluster) []string {
	var errs []string
	if err := c.nw.heal(); err != nil {
		errs = append(errs, err.Error())
	}
	for _, n := range c.nodes {
		if n.isPaused() {
			if err := n.signal(syscall.SIGCONT); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if !n.running() {
			if err := n.start(); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	return errs
}

// monitor polls /api/v1/cluster on every node and records, per term, the
// leaders named. A (term, leader) pair counts when one node reports it in
// two consecutive polls: the server reads term and leader separately, so
// a single answer can pair a new term with the leader it is just dropping.
type monitor struct {
	c       *cluster
	base    time.Time
	mu      sync.Mutex
	leaders map[uint64]map[string]string // term -> leader -> first seen by
	polls   int
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startMonitor(c *cluster, base time.Time) *monitor {
	ctx, cancel := context.WithCancel(context.Background())
	m := &monitor{c: c, base: base, leaders: map[uint64]map[string]string{}, cancel: cancel}
	for _, n := range c.nodes {
		m.wg.Add(1)
		go m.poll(ctx, n)
	}
	return m
}

func (m *monitor) poll(ctx context.Context, n *node) {
	defer m.wg.Done()
	type pair struct {
		term   uint64
		leader string
	}
	var prev pair
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var cur pair
		if n.running() && !n.isPaused() {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := n.status(pctx)
			cancel()
			if err == nil && st.Leader != "" {
				cur = pair{st.Raft.Term, st.Leader}
			}
		}
		if cur.leader != "" && cur == prev {
			m.mu.Lock()
			m.polls++
			if m.leaders[cur.term] == nil {
				m.leaders[cur.term] = map[string]string{}
			}
			if _, ok := m.leaders[cur.term][cur.leader]; !ok {
				m.leaders[cur.term][cur.leader] = fmt.Sprintf("%s at %v", n.name, time.Since(m.base).Round(time.Millisecond))
			}
			m.mu.Unlock()
		}
		prev = cur
	}
}

// finish stops polling and returns the observations.
func (m *monitor) finish() (map[uint64]map[string]string, int) {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leaders, m.polls
}
