package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// workload is a set of clients writing to a few keys through random nodes.
type workload struct {
	c       *cluster
	keys    []string
	clients int
	seed    int64
	base    time.Time // the run's time origin

	mu   sync.Mutex
	ops  []Op
	wg   sync.WaitGroup
	seq  atomic.Int64
	stop context.CancelFunc
}

// maxOpsPerClient bounds every client's loop besides its context.
const maxOpsPerClient = 100000

func (w *workload) since() time.Duration { return time.Since(w.base) }

func (w *workload) path(key string) string { return "/metrics/job/chaos/k/" + key }

// start runs the clients until stop is called.
func (w *workload) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	for i := 0; i < w.clients; i++ {
		w.wg.Add(1)
		rng := rand.New(rand.NewSource(w.seed + int64(i)))
		go w.client(ctx, i, rng)
	}
}

// finish stops the clients and waits for their last requests (each is
// bounded by the client timeout).
func (w *workload) finish() []Op {
	w.stop()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Op(nil), w.ops...)
}

func (w *workload) client(ctx context.Context, id int, rng *rand.Rand) {
	defer w.wg.Done()
	for i := 0; i < maxOpsPerClient && ctx.Err() == nil; i++ {
		n := w.c.nodes[rng.Intn(len(w.c.nodes))]
		key := w.keys[rng.Intn(len(w.keys))]
		num := w.seq.Add(1)
		op := Op{Client: id, ID: fmt.Sprintf("c%d-%d", id, num), Key: key, Node: n.name}
		var method, body string
		switch r := rng.Intn(10); {
		case r < 4:
			op.Kind, op.Family, method = "PUT", "a", http.MethodPut
		case r < 8:
			op.Kind, op.Family, method = "POST", string("ab"[rng.Intn(2)]), http.MethodPost
		default:
			op.Kind, method = "DELETE", http.MethodDelete
		}
		if op.Kind != "DELETE" {
			body = fmt.Sprintf("# TYPE chaos_%s gauge\nchaos_%s{op=%q} %d\n", op.Family, op.Family, op.ID, num)
		}
		op.Start = w.since()
		// Not tied to ctx: a request in flight when the run ends is
		// completed (bounded by the client timeout), not cancelled.
		res := n.write(context.Background(), n.client, method, w.path(key), body)
		op.End = w.since()
		op.Status, op.Index = res.status, res.index
		if res.err != nil {
			op.Err = res.err.Error()
		}
		switch {
		case res.err != nil && res.notSent:
			op.Result = NotSent
		case res.err != nil:
			op.Result = Unknown
		case (op.Kind == "DELETE" && res.status == 202) || (op.Kind != "DELETE" && res.status == 200):
			op.Result = Acked
		case res.status == 503:
			op.Result = Failed
		case res.status == 504:
			op.Result = Unknown
		default:
			op.Result = Unexpected
			op.Err = res.body
		}
		w.mu.Lock()
		w.ops = append(w.ops, op)
		w.mu.Unlock()
		// Pacing: 20-60 ms between a client's writes, 200 ms more after a
		// refused connection (the node is down).
		pause := time.Duration(20+rng.Intn(40)) * time.Millisecond
		if op.Result == NotSent {
			pause += 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// probeSeq numbers probe writes (job chaos_probe, one group per node).
var probeSeq atomic.Int64

// probeWrite PUTs a probe value through n and returns the answer.
func probeWrite(ctx context.Context, n *node) writeResult {
	v := probeSeq.Add(1)
	body := fmt.Sprintf("# TYPE chaos_probe gauge\nchaos_probe{op=\"probe-%d\"} %d\n", v, v)
	return n.write(ctx, n.probe, http.MethodPut, "/metrics/job/chaos_probe/node/"+n.name, body)
}

// timeToRecover measures, from healed, how long until a write through
// every node succeeds again; it gives up after limit.
func timeToRecover(c *cluster, healed time.Time, limit time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithDeadline(context.Background(), healed.Add(limit))
	defer cancel()
	var mu sync.Mutex
	var worst time.Duration
	var errs []string
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func(n *node) {
			defer wg.Done()
			last := "no attempt"
			for ctx.Err() == nil {
				res := probeWrite(ctx, n)
				if res.err == nil && res.status == 200 {
					d := time.Since(healed)
					mu.Lock()
					worst = max(worst, d)
					mu.Unlock()
					return
				}
				last = fmt.Sprintf("%d %v %s", res.status, res.err, res.body)
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
			mu.Lock()
			errs = append(errs, fmt.Sprintf("%s: no write succeeded within %v (last: %s)", n.name, limit, last))
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	if len(errs) > 0 {
		return 0, fmt.Errorf("%v", errs)
	}
	return worst, nil
}
