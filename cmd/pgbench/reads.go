// The benchmark's reads: scrapes of one node and of a follower, the
// applied index, and how soon a push shows on every node.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

type scrapeResult struct {
	lat  latencySummary
	size int
}

// scrape GETs /metrics from node with the given Accept header, without
// compression, and returns the latency and the body size.
func (l *loader) scrape(ctx context.Context, node, accept string) (time.Duration, int, error) {
	return l.scrapePath(ctx, node, "/metrics", accept, "identity")
}

// scrapePath is scrape of another path (/metrics?stale) or with another
// Accept-Encoding (gzip: the body is read compressed, as it comes).
func (l *loader) scrapePath(ctx context.Context, node, path, accept, encoding string) (time.Duration, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+path, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", encoding)
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	d := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s (%s): %d", path, accept, resp.StatusCode)
	}
	return d, int(n), nil
}

// scrapeLoad scrapes node n times in each format, with one push (not
// counted) before every scrape so that a cache is invalidated as in real
// use.
func (l *loader) scrapeLoad(ctx context.Context, groups []int, n int) (text, proto, gzipped scrapeResult, err error) {
	node := l.nodes[0]
	rng := rand.New(rand.NewPCG(7, 7))
	var tl, pl, gl []time.Duration
	for i := 0; i < n; i++ {
		for _, f := range []struct {
			accept, encoding string
			lat              *[]time.Duration
			res              *scrapeResult
		}{{acceptText, "identity", &tl, &text}, {acceptProto, "identity", &pl, &proto}, {acceptText, "gzip", &gl, &gzipped}} {
			if _, err := l.push(ctx, node, http.MethodPut, groupPath(groups[rng.IntN(len(groups))]), pushBody(l.cfg.families, rng)); err != nil {
				return text, proto, gzipped, fmt.Errorf("push between scrapes: %w", err)
			}
			d, size, err := l.scrapePath(ctx, node, "/metrics", f.accept, f.encoding)
			if err != nil {
				return text, proto, gzipped, err
			}
			*f.lat = append(*f.lat, d)
			f.res.size = size
		}
	}
	text.lat, proto.lat, gzipped.lat = summarize(tl), summarize(pl), summarize(gl)
	return text, proto, gzipped, nil
}

// followerScrapes scrapes a follower of a cluster n times as text with a
// read index (/metrics, the default) and n times without (/metrics?stale),
// alternately, each after a push through another node, so that the read
// index has a fresh write to wait for.
func (l *loader) followerScrapes(ctx context.Context, groups []int, n int) (readIndex, stale latencySummary, err error) {
	follower, other, err := l.followerAndOther(ctx)
	if err != nil {
		return readIndex, stale, err
	}
	rng := rand.New(rand.NewPCG(9, 9))
	var ri, st []time.Duration
	for i := 0; i < 2*n; i++ {
		if _, err := l.push(ctx, other, http.MethodPut, groupPath(groups[rng.IntN(len(groups))]), pushBody(l.cfg.families, rng)); err != nil {
			return readIndex, stale, fmt.Errorf("push between scrapes: %w", err)
		}
		path, lat := "/metrics", &ri
		if i%2 == 1 {
			path, lat = "/metrics?stale", &st
		}
		d, _, err := l.scrapePath(ctx, follower, path, acceptText, "identity")
		if err != nil {
			return readIndex, stale, err
		}
		*lat = append(*lat, d)
	}
	return summarize(ri), summarize(st), nil
}

// followerAndOther returns a follower's URL and another node's.
func (l *loader) followerAndOther(ctx context.Context) (string, string, error) {
	for i, node := range l.nodes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+"/api/v1/cluster", nil)
		if err != nil {
			return "", "", err
		}
		resp, err := l.client.Do(req)
		if err != nil {
			return "", "", err
		}
		var env struct{ Data struct{ Self, Leader string } }
		err = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if err != nil {
			return "", "", fmt.Errorf("GET %s/api/v1/cluster: %w", node, err)
		}
		if env.Data.Leader != "" && env.Data.Self != env.Data.Leader {
			return node, l.nodes[(i+1)%len(l.nodes)], nil
		}
	}
	return "", "", errors.New("no follower found")
}

// convergenceMetric is the family the convergence phase pushes; it sorts
// before bench_metric_* so it comes early in /metrics and a poll can stop
// reading there.
const convergenceMetric = "bench_convergence"

// showsValue GETs /metrics from node and reads until the convergence
// family's sample; it reports whether its value is want.
func (l *loader) showsValue(ctx context.Context, node string, want float64) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+"/metrics", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", acceptText)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := l.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s/metrics: %d", node, resp.StatusCode)
	}
	v, found, err := findSample(resp.Body, convergenceMetric+"{")
	// Drain a small rest so that the connection is reused; a large one
	// (thousands of groups) costs more to read than a new connection.
	_, _ = io.CopyN(io.Discard, resp.Body, 256<<10)
	if err != nil || !found {
		return false, err
	}
	return v == want, nil
}

// findSample scans text exposition for the first line starting with prefix
// and returns its value. It stops reading there.
func findSample(r io.Reader, prefix string) (float64, bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line[strings.LastIndexByte(line, '}')+1:])
		if len(f) == 0 {
			return 0, false, fmt.Errorf("malformed sample line %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, false, fmt.Errorf("malformed sample line %q", line)
		}
		return v, true, nil
	}
	return 0, false, sc.Err()
}

// errNoReadIndex: the gateway does not answer reads with its applied index.
var errNoReadIndex = errors.New("reads carry no " + indexHeader + " header")

// appliedIndex GETs /api/v1/status from node (a small answer) and returns
// the index its state had applied before the read.
func (l *loader) appliedIndex(ctx context.Context, node string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+"/api/v1/status", nil)
	if err != nil {
		return 0, err
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, err
	}
	readSome(resp)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s/api/v1/status: %d", node, resp.StatusCode)
	}
	h := resp.Header.Get(indexHeader)
	if h == "" {
		return 0, errNoReadIndex
	}
	return strconv.ParseUint(h, 10, 64)
}

// convergenceResult holds the two measures of convergence.
type convergenceResult struct {
	// value: until every other node serves the pushed value in /metrics.
	value latencySummary
	// index: until every other node answers a read with an applied index
	// at least the write's (so any read from then on shows the value);
	// ok is false if the gateway does not say (an older build).
	index   latencySummary
	indexOK bool
}

// convergence pushes a new value to node i (round-robin) 2n times and
// measures, from the acknowledgement, how long until every other node
// shows it, alternating two probes: n samples poll /metrics until it
// serves the value (a full scrape per poll), n samples poll the small
// /api/v1/status until its applied index reaches the write's. Pollers do
// not sleep between reads.
func (l *loader) convergence(ctx context.Context, n int) (convergenceResult, error) {
	const path = "/metrics/job/bench/instance/convergence"
	var values, indexes []time.Duration
	indexOK := true
	for i := 0; i < 2*n; i++ {
		byIndex := i%2 == 1
		if byIndex && !indexOK {
			continue
		}
		writer := (i / 2) % len(l.nodes)
		val := float64(i + 1)
		body := fmt.Sprintf("# TYPE %s gauge\n%s %d\n", convergenceMetric, convergenceMetric, i+1)
		_, written, err := l.pushIndexed(ctx, l.nodes[writer], http.MethodPut, path, body)
		if err != nil {
			return convergenceResult{}, fmt.Errorf("convergence push: %w", err)
		}
		if byIndex && written == 0 {
			indexOK = false
			continue
		}
		// shows reports whether node shows the write.
		shows := func(ctx context.Context, node string) (bool, error) { return l.showsValue(ctx, node, val) }
		what := fmt.Sprintf("value %d", i+1)
		if byIndex {
			shows = func(ctx context.Context, node string) (bool, error) {
				applied, err := l.appliedIndex(ctx, node)
				return err == nil && applied >= written, err
			}
			what = fmt.Sprintf("applied index %d", written)
		}
		ack := time.Now()
		pctx, cancel := context.WithTimeout(ctx, l.cfg.convergenceTimeout)
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			worst time.Duration
			ferr  error
		)
		for j, node := range l.nodes {
			if j == writer {
				continue
			}
			wg.Add(1)
			go func(node string) {
				defer wg.Done()
				for {
					ok, err := shows(pctx, node)
					if err == nil && ok {
						d := time.Since(ack)
						mu.Lock()
						worst = max(worst, d)
						mu.Unlock()
						return
					}
					if errors.Is(err, errNoReadIndex) || pctx.Err() != nil {
						mu.Lock()
						if ferr == nil {
							ferr = fmt.Errorf("%s did not show %s within %v (last error: %w)", node, what, l.cfg.convergenceTimeout, err)
						}
						mu.Unlock()
						return
					}
				}
			}(node)
		}
		wg.Wait()
		cancel()
		if err := ctx.Err(); err != nil {
			return convergenceResult{}, err
		}
		if byIndex && errors.Is(ferr, errNoReadIndex) {
			indexOK = false
			continue
		}
		if ferr != nil {
			return convergenceResult{}, ferr
		}
		if byIndex {
			indexes = append(indexes, worst)
		} else {
			values = append(values, worst)
		}
	}
	if len(values) == 0 {
		return convergenceResult{}, errors.New("no convergence sample")
	}
	res := convergenceResult{value: summarize(values), indexOK: indexOK && len(indexes) > 0}
	if res.indexOK {
		res.index = summarize(indexes)
	}
	return res, nil
}
