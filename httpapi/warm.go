package httpapi

import (
	"sync/atomic"
	"time"
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
// Between two refreshes the warmer waits at least spacing times as long
// as the last refresh took, which bounds its share of the CPU. A refresh
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
	return &warmer{kicks: make(chan struct{}, 1), delay: delay, maxWait: maxWait, idle: idle, batch: batch, spacing: 4, refresh: refresh}
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
		w.gather(time.Duration(w.spacing) * took)
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

// gather waits until a refresh is due (see warmer), at least min.
func (w *warmer) gather(min time.Duration) {
	first := time.Now()
	for {
		before := w.changes.Load()
		time.Sleep(max(w.delay, min))
		n := w.changes.Load()
		if n == before || n >= w.batch || time.Since(first) >= w.maxWait {
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
