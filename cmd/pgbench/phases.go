package main

// The phases of one run of one target at one G (runOne), in the order they
// run; main.go drives the runs and the report.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// runOne starts target fresh, runs every phase at G groups and stops it.
// notes are remarks for the report (errors seen, a capped fill). With
// profiled set, it takes the profiles (profiles.go) and passes each one
// taken to it.
func runOne(ctx context.Context, cfg *config, target string, G int, profiled func(what, file, sampleIndex string), logf func(string, ...any)) (f figures, notes []string, err error) {
	in, err := startTarget(ctx, cfg, target)
	if err != nil {
		return nil, nil, err
	}
	defer in.stop()
	defer func() {
		// A phase that failed because a gateway died: say so, with its output.
		if err == nil {
			return
		}
		for _, c := range in.nodes {
			if c.exited() {
				err = fmt.Errorf("%w\n%s exited during the run (%v); its output:\n%s", err, c.name, c.ExitError(), c.logTail())
			}
		}
	}()
	l := newLoader(cfg, in)
	defer l.close()
	f = figures{}

	// Memory right after start.
	startRSS := make([]float64, len(in.nodes))
	for i, c := range in.nodes {
		if startRSS[i], err = c.rss(); err != nil {
			return nil, nil, fmt.Errorf("rss of %s: %w", c.name, err)
		}
	}

	// 1. fill
	fr, err := l.fill(ctx, G)
	if err != nil {
		return nil, nil, fmt.Errorf("fill: %w", err)
	}
	reached := len(fr.groups)
	f["fill.groups"] = float64(reached)
	f["fill.time"] = fr.elapsed.Seconds()
	f["fill.rate"] = float64(reached) / fr.elapsed.Seconds()
	f["fill.errors"] = float64(fr.errors)
	f["fill.capped"] = 0
	if fr.capped {
		f["fill.capped"] = 1
		notes = append(notes, fmt.Sprintf("fill capped by --fill-timeout=%v at %d of %d groups", cfg.fillTimeout, reached, G))
	}
	if fr.errors > 0 {
		notes = append(notes, fmt.Sprintf("fill: %d errors, first: %s", fr.errors, fr.first))
	}
	logf("G=%d %s: fill %d groups in %v (%.0f pushes/s)%s", G, target, reached, fr.elapsed.Round(time.Millisecond), f["fill.rate"], map[bool]string{true: " CAPPED", false: ""}[fr.capped])

	// 5. memory after the fill (the node with the largest RSS).
	var worst int
	var worstRSS float64
	for i, c := range in.nodes {
		r, err := c.rss()
		if err != nil {
			return nil, nil, fmt.Errorf("rss of %s: %w", c.name, err)
		}
		if r > worstRSS {
			worst, worstRSS = i, r
		}
	}
	f["mem.rss_start"] = startRSS[worst]
	f["mem.rss"] = worstRSS
	f["mem.per_series"] = (worstRSS - startRSS[worst]) / float64(reached*(cfg.families+2))
	// RSS follows the collector's pacing; the live heap right after a
	// collection is what the store holds.
	if live, err := l.liveHeap(ctx, l.nodes[0]); err != nil {
		notes = append(notes, fmt.Sprintf("live heap after the fill: %v", err))
	} else {
		f["mem.live"] = live
		f["mem.live_per_series"] = live / float64(reached*(cfg.families+2))
	}
	// heapProfile saves the first node's heap profile (with --profile-dir)
	// and lists it in the report.
	heapProfile := func(kind, title string) error {
		if profiled == nil {
			return nil
		}
		file := cfg.profilePath(target, G, kind)
		if err := l.heapProfile(ctx, l.nodes[0], file); err != nil {
			return err
		}
		profiled(title, file, "inuse_space")
		return nil
	}
	if err := heapProfile("heap", "heap in use after the fill"); err != nil {
		return nil, nil, err
	}

	// 2. push
	for _, m := range cfg.methods {
		method := strings.ToUpper(m)
		for i, c := range cfg.clients {
			var cpu <-chan error
			cpuFile := cfg.profilePath(target, G, "cpu-push")
			if profiled != nil && m == cfg.methods[0] && i == len(cfg.clients)-1 {
				cpu = l.cpuProfile(ctx, l.nodes[0], cfg.duration, cpuFile)
			}
			pr, err := l.pushLoad(ctx, fr.groups, method, c)
			if err != nil {
				return nil, nil, fmt.Errorf("push %s c=%d: %w", method, c, err)
			}
			if cpu != nil {
				if err := <-cpu; err != nil {
					return nil, nil, err
				}
				profiled(fmt.Sprintf("CPU of the push phase (%s, %d clients)", method, c), cpuFile, "cpu")
			}
			k := pushKey(m, c)
			f[k+".rate"] = float64(pr.ok) / pr.elapsed.Seconds()
			f[k+".errors"] = float64(pr.errors)
			if pr.ok > 0 {
				f.setLatency(k, pr.lat)
			}
			if pr.errors > 0 {
				notes = append(notes, fmt.Sprintf("push %s %d clients: %d errors, first: %s", method, c, pr.errors, pr.first))
			}
			logf("G=%d %s: push %s c=%d: %.0f/s %v errors %d", G, target, method, c, f[k+".rate"], pr.lat, pr.errors)
		}
	}

	// 3. scrape
	text, proto, gzipped, err := l.scrapeLoad(ctx, fr.groups, cfg.scrapes)
	if err != nil {
		return nil, nil, fmt.Errorf("scrape: %w", err)
	}
	for name, r := range map[string]scrapeResult{"text": text, "proto": proto, "gzip": gzipped} {
		f["scrape."+name+".p50"] = r.lat.p50.Seconds()
		f["scrape."+name+".max"] = r.lat.max.Seconds()
		f["scrape."+name+".bytes"] = float64(r.size)
	}
	logf("G=%d %s: scrape text p50 %v (%d bytes), protobuf p50 %v (%d bytes), text with gzip p50 %v (%d bytes)", G, target,
		text.lat.p50.Round(time.Microsecond), text.size, proto.lat.p50.Round(time.Microsecond), proto.size,
		gzipped.lat.p50.Round(time.Microsecond), gzipped.size)

	// 3b. scrapes of a follower with and without a read index
	if len(in.nodes) > 1 {
		ri, st, err := l.followerScrapes(ctx, fr.groups, cfg.scrapes)
		if err != nil {
			return nil, nil, fmt.Errorf("follower scrape: %w", err)
		}
		f.setLatency("scrape.follower_ri", ri)
		f.setLatency("scrape.follower_stale", st)
		logf("G=%d %s: scrape of a follower (text) with read index %v, stale %v", G, target, ri, st)
	}

	// 4. convergence
	if len(in.nodes) > 1 && cfg.convergence > 0 {
		cr, err := l.convergence(ctx, cfg.convergence)
		if err != nil {
			return nil, nil, fmt.Errorf("convergence: %w", err)
		}
		f.setLatency("conv", cr.value)
		logf("G=%d %s: convergence (value in /metrics) %v", G, target, cr.value)
		if cr.indexOK {
			f.setLatency("conv_index", cr.index)
			logf("G=%d %s: convergence (applied index) %v", G, target, cr.index)
		} else {
			notes = append(notes, "convergence by applied index not measured: this build does not answer reads with "+indexHeader)
		}
	}
	// 6. churn soak
	if cfg.soak > 0 && G == cfg.largest() {
		largest := func() (float64, error) {
			var worst float64
			for _, c := range in.nodes {
				r, err := c.rss()
				if err != nil {
					return 0, fmt.Errorf("rss of %s: %w", c.name, err)
				}
				worst = max(worst, r)
			}
			return worst, nil
		}
		anonStart, err := in.nodes[0].anonRSS()
		if err != nil {
			return nil, nil, fmt.Errorf("rss of %s: %w", in.nodes[0].name, err)
		}
		sr, err := l.soak(ctx, fr.groups, cfg.soak, cfg.soakCycles, largest)
		if err != nil {
			return nil, nil, fmt.Errorf("soak: %w", err)
		}
		anonEnd, err := in.nodes[0].anonRSS()
		if err != nil {
			return nil, nil, fmt.Errorf("rss of %s: %w", in.nodes[0].name, err)
		}
		f["soak.anon_start"], f["soak.anon_end"] = anonStart, anonEnd
		f["soak.ops"] = float64(sr.ops)
		f["soak.rate"] = float64(sr.ops) / sr.elapsed.Seconds()
		f["soak.time"] = sr.elapsed.Seconds()
		f["soak.rss_start"], f["soak.rss_half"], f["soak.rss_end"], f["soak.rss_max"] = sr.rssStart, sr.rssHalf, sr.rssEnd, sr.rssMax
		f["soak.rss_low2"], f["soak.rss_high2"], f["soak.rss_slope2"] = sr.rssLow, sr.rssHigh, sr.rssSlope
		f["soak.live_start"], f["soak.live_half"], f["soak.live_end"] = sr.liveStart, sr.liveHalf, sr.liveEnd
		f["soak.errors"] = float64(sr.errors)
		if sr.errors > 0 {
			notes = append(notes, fmt.Sprintf("soak: %d errors, first: %s", sr.errors, sr.first))
		}
		if cfg.soakCycles > 0 && sr.ops < cfg.soakCycles {
			notes = append(notes, fmt.Sprintf("soak of %s: %d of its %d cycles within --soak=%v", target, sr.ops, cfg.soakCycles, cfg.soak))
		}
		logf("G=%d %s: soak %v: %d delete+push cycles (%.0f/s), RSS %.1f → %.1f halfway → %.1f MiB (max %.1f; second half %.1f–%.1f MiB, trend %+.1f MiB/min), live heap %.1f → %.1f → %.1f MiB", G, target, sr.elapsed.Round(time.Second),
			sr.ops, f["soak.rate"], sr.rssStart/(1<<20), sr.rssHalf/(1<<20), sr.rssEnd/(1<<20), sr.rssMax/(1<<20),
			sr.rssLow/(1<<20), sr.rssHigh/(1<<20), sr.rssSlope/(1<<20),
			sr.liveStart/(1<<20), sr.liveHalf/(1<<20), sr.liveEnd/(1<<20))
		if err := heapProfile("heap-soak", "heap in use after the soak"); err != nil {
			return nil, nil, err
		}
	}
	for _, c := range in.nodes {
		if c.exited() {
			return nil, nil, errors.New("a gateway exited during the run")
		}
	}
	// 7. a snapshot of the state, then a crash and restart to ready (ours:
	// they keep their state)
	if target != targetUpstream {
		took, n, err := l.snapshot(ctx, l.nodes[0])
		if err != nil {
			return nil, nil, fmt.Errorf("snapshot: %w", err)
		}
		f["snapshot.time"], f["snapshot.bytes"] = took.Seconds(), float64(n)
		logf("G=%d %s: snapshot of the state: %v, %.1f MiB", G, target, took.Round(time.Millisecond), float64(n)/(1<<20))
		f["disk.bytes"] = storageBytes(in)
		d, err := restartAll(ctx, in, cfg.startTimeout)
		if err != nil {
			return nil, nil, fmt.Errorf("restart: %w", err)
		}
		f["restart.ready"] = d.Seconds()
		logf("G=%d %s: kill -9 of every node and restart to ready: %v (storage of the largest node %.1f MiB)", G, target, d.Round(time.Millisecond), f["disk.bytes"]/(1<<20))
		if restore, replayed, ok := restartParts(in); ok {
			f["restart.restore"], f["restart.replayed"] = restore.Seconds(), float64(replayed)
			logf("G=%d %s: the first node restored its snapshot in %v and applied %d log entries after it before it was ready", G, target, restore.Round(time.Millisecond), replayed)
		}
	}
	return f, notes, nil
}

func pushKey(method string, clients int) string {
	return fmt.Sprintf("push.%s.c%d", strings.ToLower(method), clients)
}
