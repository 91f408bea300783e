package httpapi

import (
	"html/template"
	"net/http"
	"sort"
	"time"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// statusTemplate is the minimal status page: groups, their families and
// the node's flags and build information. (The full UI is a later step.)
var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"unixNano": func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Pushgateway</title>
<style>body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}.failed{color:#b00}</style>
</head>
<body>
<h1>Pushgateway</h1>
<h2>Metric groups ({{len .Groups}})</h2>
{{range $g := .Groups}}<div class="group">
<p>{{range $i, $n := $g.Names}}{{if $i}} {{end}}<code>{{$n}}="{{index $g.Group.Labels $n}}"</code>{{end}}
{{if not $g.Group.LastPushSuccess}}<span class="failed">last push failed</span>{{end}}</p>
<table><tr><th>metric</th><th>type</th><th>help</th><th>last push</th><th>samples</th></tr>
{{range $name := $g.Families}}{{with index $g.Group.Families $name}}<tr><td>{{$name}}</td><td>{{.MF.GetType}}</td><td>{{.MF.GetHelp}}</td><td>{{unixNano .TimeUnixNano}}</td><td>{{len .MF.Metric}}</td></tr>{{end}}{{end}}
</table></div>
{{end}}
<h2>Build information</h2>
<table>{{range $k, $v := .BuildInfo}}<tr><th>{{$k}}</th><td>{{$v}}</td></tr>{{end}}</table>
<h2>Flags</h2>
<table>{{range $k := .FlagNames}}<tr><th>{{$k}}</th><td>{{index $.Flags $k}}</td></tr>{{end}}</table>
</body></html>
`))

type statusGroup struct {
	Group    *fsm.Group
	Names    []string
	Families []string
}

// statusPage renders the status page at / and /status.
func (a *API) statusPage(w http.ResponseWriter, _ *http.Request) {
	groups := a.opts.Store.Groups()
	data := struct {
		Groups    []statusGroup
		BuildInfo map[string]string
		Flags     map[string]string
		FlagNames []string
	}{BuildInfo: a.opts.BuildInfo, Flags: a.opts.Flags}
	for _, g := range groups {
		data.Groups = append(data.Groups, statusGroup{Group: g, Names: g.SortedLabelNames(), Families: g.SortedFamilyNames()})
	}
	for k := range a.opts.Flags {
		data.FlagNames = append(data.FlagNames, k)
	}
	sort.Strings(data.FlagNames)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusTemplate.Execute(w, data); err != nil {
		a.logger.Error("render status page", "err", err)
	}
}
