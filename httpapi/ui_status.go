package httpapi

import (
	"net/http"
	"sort"
	"time"
)

// The status page (/status): build information, start time and flags, as
// upstream's status tab. The page frame, templates and assets are in ui.go.

type uiStatusBody struct {
	Start            time.Time
	Uptime           string
	Groups           int
	BuildInfo, Flags []uiKV
}

func (a *API) statusPage(w http.ResponseWriter, _ *http.Request) {
	body := &uiStatusBody{
		Start:     a.startTime,
		Uptime:    time.Since(a.startTime).Round(time.Second).String(),
		Groups:    len(a.opts.Store.Groups()),
		BuildInfo: sortedKVs(a.opts.BuildInfo),
		Flags:     sortedKVs(a.opts.Flags),
	}
	a.renderUI(w, "status", "Status", body)
}

func sortedKVs(m map[string]string) []uiKV {
	out := make([]uiKV, 0, len(m))
	for k, v := range m {
		out = append(out, uiKV{K: k, V: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].K < out[j].K })
	return out
}
