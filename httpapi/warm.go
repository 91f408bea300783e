package httpapi

import (
	"maps"
	"sync/atomic"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// warmer keeps the cached exposition up to date in the background, so a
// scrape after many changes (the first one after filling a large store,
// above all) finds the families ordered and encoded instead of doing it
// all itself. It runs only while the store changes: a change starts it
// (kick), and it ends after idle without one.
//
// A refresh happens once the store has been quiet for delay, or once
// batch changes have gathered, or maxWait after the first change waiting,
// whichever comes first: a burst of writes (a fill) is refreshed as it
// goes and right after it ends, while a trickle of writes is refreshed at
// most every maxWait (a scrape encodes a few changes quickly itself).
//
// The warmer keeps to the background. It encodes on one core, a family at
// a time (formatCache.warm), so a scrape never waits for more than one
// family and encodes the rest itself, on every core. While changes keep
// coming it waits at least spacing times as long as its last refresh took
// before the next one, so it takes at most a thirteenth of one core
// however heavy the load: pushes spread over a large store change nearly
// every segment between two refreshes, so a refresh costs about the same
// however many pushes came since (about a second of one core at 100,000
// groups), and at four times, on both cores, the warmer doubled the push
// tail (p99 33 against 20 ms, pgbench, one node, 16 clients). Once the
// store is quiet it catches up as soon as its last refresh's duration has
// passed, before the scrapes that follow a burst would do it. A refresh
// may decline (report false: the node is still catching up with the log,
// when ordering and encoding a state about to change would only hold the
// replay back); the changes then stay pending and it is tried again after
// delay, for as long as it declines (a node that stays unready, cut off
// from the others, asks 4 times a second whether it is ready).
type warmer struct {
	kicks   chan struct{}
	changes atomic.Int64
	running atomic.Bool

	delay, maxWait, idle time.Duration
	batch                int64
	spacing              int
	refresh              func() bool
}

func newWarmer(delay, maxWait, idle time.Duration, batch int64, refresh func() bool) *warmer {
	return &warmer{kicks: make(chan struct{}, 1), delay: delay, maxWait: maxWait, idle: idle, batch: batch, spacing: warmSpacing, refresh: refresh}
}

// kick signals a change. It never blocks: it is called by the state
// machine after applying a command.
func (w *warmer) kick() {
	w.changes.Add(1)
	select {
	case w.kicks <- struct{}{}:
	default:
	}
	if !w.running.Load() && w.running.CompareAndSwap(false, true) {
		go w.run()
	}
}

func (w *warmer) run() {
	idle := time.NewTimer(w.idle)
	defer idle.Stop()
	var took time.Duration
	for {
		select {
		case <-w.kicks:
		case <-idle.C:
			if !w.stop() {
				return
			}
		}
		w.gather(took)
		// Changes from now on kick again.
		select {
		case <-w.kicks:
		default:
		}
		w.changes.Store(0)
		start := time.Now()
		if w.refresh() {
			took = time.Since(start)
		} else {
			// Declined: the changes are still to be refreshed.
			took = 0
			w.changes.Add(1)
			select {
			case w.kicks <- struct{}{}:
			default:
			}
		}
		idle.Reset(w.idle)
	}
}

// gather waits until a refresh is due (see warmer), took the duration of
// the last refresh: once the store was quiet for delay, at least took
// after it; while changes keep coming, once batch changes gathered or
// maxWait passed, at least spacing times took after it.
func (w *warmer) gather(took time.Duration) {
	first := time.Now()
	for {
		before := w.changes.Load()
		time.Sleep(max(w.delay, took-time.Since(first)))
		n := w.changes.Load()
		since := time.Since(first)
		if n == before && since >= took {
			return
		}
		if since >= time.Duration(w.spacing)*took && (n >= w.batch || since >= w.maxWait) {
			return
		}
	}
}

// stop marks the warmer stopped after its idle time and reports whether it
// must go on after all: a kick that came just before found it running and
// started no other.
func (w *warmer) stop() bool {
	w.running.Store(false)
	select {
	case <-w.kicks:
	default:
		return false
	}
	if w.running.CompareAndSwap(false, true) {
		return true
	}
	// Another warmer started meanwhile: hand the kick on to it.
	select {
	case w.kicks <- struct{}{}:
	default:
	}
	return false
}

// cached returns the encoded families by name, as they are now.
func (fc *formatCache) cached() map[string]*renderedFamily {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return maps.Clone(fc.families)
}

// warm brings the encoded families up to date with pushed (rendered with
// their plain bytes kept when plain is set, compressed only otherwise), and
// their compressed pieces too when compressed is set, for the warmer: on one
// core, a family at a time, holding fc.mu for that family only. A scrape
// that comes meanwhile waits for one family at most and encodes the others
// itself, on every core. seen are the cached families (cached) from before
// pushed was read: a family cached otherwise now was brought up to date by
// a scrape meanwhile, from a state that may be newer than pushed, and is
// left as it is. Families no longer pushed are left for a scrape to drop.
func (fc *formatCache) warm(pushed []*fsm.ExposedFamily, seen map[string]*renderedFamily, plain, compressed bool) error {
	for _, ef := range pushed {
		if err := fc.warmFamily(ef, seen[ef.Name()], plain, compressed); err != nil {
			return err
		}
		if fc.afterWarmFamily != nil {
			fc.afterWarmFamily()
		}
	}
	return nil
}

// warmFamily is warm for one family, seen the cached one before its state
// was read.
func (fc *formatCache) warmFamily(ef *fsm.ExposedFamily, seen *renderedFamily, plain, compressed bool) error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	rf := fc.families[ef.Name()]
	if rf != seen {
		return nil
	}
	if !rf.current(ef, plain) {
		next, err := renderFamily(fc.key, ef, rf, plain)
		if err != nil {
			return err
		}
		fc.families[ef.Name()] = next
		rf = next
	}
	if compressed {
		if _, err := rf.gzipped(); err != nil {
			return err
		}
	}
	return nil
}
