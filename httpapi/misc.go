package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/common/route"
)

// healthy answers 200 while the process serves.
func (a *API) healthy(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, "OK")
}

// ready answers 200 when the node knows a leader and has caught up, 503
// with the reason otherwise.
func (a *API) ready(w http.ResponseWriter, _ *http.Request) {
	if a.opts.Readiness != nil {
		if err := a.opts.Readiness.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	// Reads are served; say so, and why writes are refused if they are.
	if ws, ok := a.opts.Submitter.(interface{ WriteStatus() error }); ok {
		if err := ws.WriteStatus(); err != nil {
			w.Header().Set(writesRefusedHeader, err.Error())
			_, _ = io.WriteString(w, "OK (reads); writes refused: "+err.Error())
			return
		}
	}
	_, _ = io.WriteString(w, "OK")
}

// writesRefusedHeader carries, on /-/ready, why this node refuses writes
// (a header upstream does not send).
const writesRefusedHeader = "X-Pushgateway-Writes-Refused"

// quit asks the process to shut down (lifecycle API).
func (a *API) quit(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprint(w, "Requesting termination... Goodbye!")
	if a.opts.Quit != nil {
		a.quitOnce.Do(func() { close(a.opts.Quit) })
	}
}

func lifecycleDisabled(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte("Lifecycle API is not enabled."))
}

func quitWrongMethod(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = w.Write([]byte("Only POST or PUT requests allowed."))
}

// handlePprof serves the runtime profiles under /debug/pprof, and the
// execution trace (/debug/pprof/trace?seconds=N), which upstream does not
// serve: it shows where a slow request waited (scheduling, locks, system
// calls), which is what a push's latency tail needs explained.
func handlePprof(w http.ResponseWriter, r *http.Request) {
	switch route.Param(r.Context(), "pprof") {
	case "/cmdline":
		pprof.Cmdline(w, r)
	case "/profile":
		pprof.Profile(w, r)
	case "/trace":
		pprof.Trace(w, r)
	case "/symbol":
		pprof.Symbol(w, r)
	default:
		pprof.Index(w, r)
	}
}
