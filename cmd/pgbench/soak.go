package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The churn soak (--soak=DURATION): for that long (or, with --soak-cycles,
// for that many cycles: below), 16 clients delete
// random groups and push them again, each time with series of a new
// generation (a label value never seen before), so stored series, label
// values and cached encodings keep coming and going while the number of
// groups stays the same. The nodes' RSS is sampled throughout: memory must
// not grow with churn. The first half warms up (the heap grows to its
// steady size under the collector's pacing); the second half must be flat.
// RSS follows the collector's pacing and what the runtime returns to the
// system, so the first node's live heap (right after a forced collection)
// is taken at the start, halfway and the end too: what the store holds.
//
// With --soak-cycles=N the soak ends after N delete+push cycles instead,
// --soak bounding its time, and its half is half the cycles: a warm-up is
// counted in the store's turnover, not in minutes, and the cluster churns
// at under half the rate of one node (an 8-minute soak of the cluster at
// 100,000 groups, about 500,000 cycles, ended inside its warm-up, where one
// node's million cycles had levelled off; a 16-minute one levelled off
// too). A soak its bound ends before half its cycles reports no half and
// no second half.

// A soak samples RSS every --soak/soakSamples, at most soakEvery apart
// (every 10 s in make bench-compare's soak), and once halfway. RSS follows the live heap, which
// swings in a saw-tooth of about 3 minutes under churn (the old versions of
// groups the last exposition still lists, until the next refresh). With 12
// samples, seven of them in the second half, that half's trend ranged from
// -158 to +125 MiB a minute over runs whose second halves stayed within
// 1.2-1.8 GiB.
const (
	soakSamples = 48
	soakEvery   = 10 * time.Second
)

// soakResult is what the soak measured.
type soakResult struct {
	ops              int
	errors           int
	first            string
	rssStart, rssEnd float64 // the largest node's
	rssHalf          float64 // halfway through: warmed up, so the second half shows a trend
	rssMax           float64
	// rssLow and rssHigh are the lowest and highest of the largest node's
	// RSS samples in the second half (halfway and the end included), and
	// rssSlope their least-squares trend in bytes per minute: flat is a
	// slope near zero, not an end equal to the half.
	rssLow, rssHigh, rssSlope float64
	// liveStart, liveHalf and liveEnd are the first node's heap in use
	// right after a collection.
	liveStart, liveHalf, liveEnd float64
	elapsed                      time.Duration
}

// churnBody is a push of M gauge families whose one series carries the
// generation gen.
func churnBody(families int, gen int, rng *rand.Rand) string {
	var b strings.Builder
	for f := 0; f < families; f++ {
		name := "bench_metric_" + strconv.Itoa(f)
		fmt.Fprintf(&b, "# TYPE %s gauge\n%s{kind=\"bench\",gen=\"%d\"} %g\n", name, name, gen, rng.Float64()*1000)
	}
	return b.String()
}

// soak churns groups (the fill's) for d, or until cycles delete+push
// cycles when cycles > 0 (d then bounds it), and samples every node's RSS.
func (l *loader) soak(ctx context.Context, groups []int, d time.Duration, cycles int, rss func() (float64, error)) (soakResult, error) {
	var res soakResult
	var err error
	if res.rssStart, err = rss(); err != nil {
		return res, err
	}
	if res.liveStart, err = l.liveHeap(ctx, l.nodes[0]); err != nil {
		return res, err
	}
	res.rssMax = res.rssStart
	churn, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu      sync.Mutex
		errs    errCounter
		wg      sync.WaitGroup
		gen     int
		halfway = make(chan struct{}) // closed when half the soak is behind it
		once    sync.Once
	)
	half := func() { once.Do(func() { close(halfway) }) }
	if cycles == 0 {
		defer time.AfterFunc(d/2, half).Stop()
	}
	start := time.Now()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for churn.Err() == nil {
				g := groups[rng.IntN(len(groups))]
				node := l.nodes[rng.IntN(len(l.nodes))]
				mu.Lock()
				gen++
				n := gen
				mu.Unlock()
				if _, err := l.push(churn, node, http.MethodDelete, groupPath(g), ""); err != nil {
					if churn.Err() != nil {
						return // the soak ended: the cycle is not counted
					}
					errs.add(err)
					continue
				}
				// The group is pushed again even if the soak ends
				// meanwhile: the phases after the soak find every group.
				if _, err := l.push(ctx, node, http.MethodPut, groupPath(g), churnBody(l.cfg.families, n, rng)); err != nil {
					errs.add(err)
					continue
				}
				mu.Lock()
				res.ops++
				ops := res.ops
				mu.Unlock()
				if cycles > 0 && ops >= cycles/2 {
					half()
					if ops >= cycles {
						cancel()
					}
				}
			}
		}(w)
	}
	tick := time.NewTicker(min(d/soakSamples, soakEvery))
	defer tick.Stop()
	res.rssHalf, res.liveHalf = math.NaN(), math.NaN() // unless the soak gets there
	var second []rssSample                             // from halfway on
	sample := func() (float64, error) {
		r, err := rss()
		if err != nil {
			return 0, err
		}
		res.rssMax = max(res.rssMax, r)
		if second != nil {
			second = append(second, rssSample{time.Since(start), r})
		}
		return r, nil
	}
	reached := halfway // nil once the half sample is taken
	for done := false; !done; {
		var err error
		select {
		case <-churn.Done():
			done = true
		case <-tick.C:
			_, err = sample()
		case <-reached:
			reached = nil
			second = []rssSample{}
			if res.rssHalf, err = sample(); err == nil {
				res.liveHalf, err = l.liveHeap(ctx, l.nodes[0])
			}
		}
		if err != nil {
			cancel()
			wg.Wait()
			return res, err
		}
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if res.rssEnd, err = rss(); err != nil {
		return res, err
	}
	res.rssMax = max(res.rssMax, res.rssEnd)
	if second != nil {
		second = append(second, rssSample{res.elapsed, res.rssEnd})
	}
	res.rssLow, res.rssHigh, res.rssSlope = trend(second)
	if res.liveEnd, err = l.liveHeap(ctx, l.nodes[0]); err != nil {
		return res, err
	}
	res.errors, res.first = errs.n, errs.first
	return res, nil
}

// rssSample is an RSS sample and when it was taken, since the soak began.
type rssSample struct {
	at  time.Duration
	rss float64
}

// trend returns the lowest and highest of samples and their least-squares
// slope in bytes per minute: NaN (not measured) for fewer than three
// samples, too few to call anything flat.
func trend(samples []rssSample) (low, high, perMinute float64) {
	if len(samples) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	low, high = samples[0].rss, samples[0].rss
	var sx, sy float64
	for _, s := range samples {
		low, high = min(low, s.rss), max(high, s.rss)
		sx += s.at.Minutes()
		sy += s.rss
	}
	if len(samples) < 3 {
		return low, high, math.NaN()
	}
	n := float64(len(samples))
	mx, my := sx/n, sy/n
	var sxy, sxx float64
	for _, s := range samples {
		dx := s.at.Minutes() - mx
		sxy += dx * (s.rss - my)
		sxx += dx * dx
	}
	if sxx == 0 {
		return low, high, math.NaN()
	}
	return low, high, sxy / sxx
}
