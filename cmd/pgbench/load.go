package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Accept headers of the scrape phase.
const (
	acceptText  = "text/plain; version=0.0.4"
	acceptProto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
)

// newTransport is an HTTP transport that only dials 127.0.0.1, never uses a
// proxy and never asks for gzip.
func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if host != "127.0.0.1" {
				return nil, fmt.Errorf("pgbench only talks to 127.0.0.1, not %s", addr)
			}
			return d.DialContext(ctx, network, addr)
		},
		DisableCompression:  true,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
}

// readSome drains and closes a response body and returns up to 300 bytes of it.
func readSome(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	_, _ = io.Copy(io.Discard, resp.Body)
	return strings.TrimSpace(string(b))
}

// loader sends the workload to one running target.
type loader struct {
	cfg    *config
	client *http.Client
	nodes  []string // base URLs
}

func newLoader(cfg *config, in *instance) *loader {
	l := &loader{cfg: cfg, client: &http.Client{Transport: newTransport(), Timeout: cfg.requestTimeout}}
	for _, c := range in.nodes {
		l.nodes = append(l.nodes, c.base)
	}
	return l
}

func (l *loader) close() { l.client.CloseIdleConnections() }

// pushBody is the text-format body of one push: M gauge families, one sample
// with a label each.
func pushBody(families int, rng *rand.Rand) string {
	var b strings.Builder
	b.Grow(families * 80)
	for f := 0; f < families; f++ {
		name := "bench_metric_" + strconv.Itoa(f)
		b.WriteString("# TYPE ")
		b.WriteString(name)
		b.WriteString(" gauge\n")
		b.WriteString(name)
		b.WriteString(`{kind="bench"} `)
		b.WriteString(strconv.FormatFloat(rng.Float64()*1000, 'g', -1, 64))
		b.WriteByte('\n')
	}
	return b.String()
}

func groupPath(i int) string { return "/metrics/job/bench/instance/" + strconv.Itoa(i) }

// push sends one push and returns its latency (request sent to body read).
// A non-2xx answer is an error.
func (l *loader) push(ctx context.Context, node, method, path, body string) (time.Duration, error) {
	d, _, err := l.pushIndexed(ctx, node, method, path, body)
	return d, err
}

// indexHeader is the raft log index our gateway answers writes with (the
// index they were applied at) and reads with (the index applied before
// the read).
const indexHeader = "X-Pushgateway-Raft-Index"

// pushIndexed is push that also returns the index the write was applied
// at (0 if the answer does not say).
func (l *loader) pushIndexed(ctx context.Context, node, method, path, body string) (time.Duration, uint64, error) {
	req, err := http.NewRequestWithContext(ctx, method, node+path, strings.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		return time.Since(start), 0, err
	}
	msg := readSome(resp)
	d := time.Since(start)
	if resp.StatusCode/100 != 2 {
		return d, 0, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, msg)
	}
	index, _ := strconv.ParseUint(resp.Header.Get(indexHeader), 10, 64)
	return d, index, nil
}

// errCounter counts errors and keeps the first message.
type errCounter struct {
	mu    sync.Mutex
	n     int
	first string
}

func (e *errCounter) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if e.first == "" {
		e.first = err.Error()
	}
}

type fillResult struct {
	groups  []int // indexes of the groups created
	elapsed time.Duration
	capped  bool
	errors  int
	first   string
}

// fill creates G groups with PUTs from fillClients clients (round-robin over
// the nodes). It stops starting new pushes at the fill timeout and lets the
// ones in flight finish.
func (l *loader) fill(ctx context.Context, G int) (fillResult, error) {
	var (
		next    atomic.Int64
		capped  atomic.Bool
		errs    errCounter
		mu      sync.Mutex
		created []int
		wg      sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < l.cfg.fillClients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= G {
					return
				}
				if time.Since(start) > l.cfg.fillTimeout {
					capped.Store(true)
					return
				}
				if _, err := l.push(ctx, l.nodes[i%len(l.nodes)], http.MethodPut, groupPath(i), pushBody(l.cfg.families, rng)); err != nil {
					errs.add(err)
					continue
				}
				mu.Lock()
				created = append(created, i)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	res := fillResult{groups: created, elapsed: time.Since(start), capped: capped.Load(), errors: errs.n, first: errs.first}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if len(created) == 0 {
		return res, fmt.Errorf("fill created no group (%d errors, first: %s)", errs.n, errs.first)
	}
	return res, nil
}

type pushResult struct {
	ok      int
	elapsed time.Duration
	lat     latencySummary
	errors  int
	first   string
}

// pushLoad runs clients concurrent clients that push (method) to random
// existing groups for the push duration, spreading requests round-robin over
// the nodes. New requests stop at the duration; the ones in flight finish and
// count.
func (l *loader) pushLoad(ctx context.Context, groups []int, method string, clients int) (pushResult, error) {
	var (
		errs errCounter
		wg   sync.WaitGroup
		lats = make([][]time.Duration, clients)
	)
	start := time.Now()
	stopAt := start.Add(l.cfg.duration)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			for k := c; ctx.Err() == nil && time.Now().Before(stopAt); k++ {
				g := groups[rng.IntN(len(groups))]
				d, err := l.push(ctx, l.nodes[k%len(l.nodes)], method, groupPath(g), pushBody(l.cfg.families, rng))
				if err != nil {
					errs.add(err)
					continue
				}
				lats[c] = append(lats[c], d)
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return pushResult{}, err
	}
	var all []time.Duration
	for _, s := range lats {
		all = append(all, s...)
	}
	return pushResult{ok: len(all), elapsed: elapsed, lat: summarize(all), errors: errs.n, first: errs.first}, nil
}
