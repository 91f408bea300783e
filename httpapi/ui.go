package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/prometheus/common/route"
)

// The web UI: server-rendered pages at /, /status and /cluster, and the
// assets they use (one stylesheet, one script, one icon) at /static/. All
// of it is embedded in the binary; pages reference nothing outside this
// node, so the UI works offline, and the Content-Security-Policy header
// keeps it that way. This file holds the frame every page shares (assets,
// templates, rendering); each page has its own file: ui_metrics.go,
// ui_status.go, ui_cluster.go.

//go:embed ui/templates/*.html ui/static/*
var uiFiles embed.FS

// uiAsset is one embedded static file.
type uiAsset struct {
	body        []byte
	contentType string
	// version is a short content hash: asset URLs carry it as ?v=, so a
	// new binary's assets are never served from a stale cache.
	version string
}

var (
	uiAssets    = loadUIAssets()
	uiTemplates = map[string]*template.Template{
		"metrics": parseUITemplate("metrics"),
		"status":  parseUITemplate("status"),
		"cluster": parseUITemplate("cluster"),
	}
)

// uiContentSecurityPolicy allows only this node's own scripts, styles,
// images and API calls.
const uiContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'"

func loadUIAssets() map[string]*uiAsset {
	types := map[string]string{
		".css": "text/css; charset=utf-8",
		".js":  "text/javascript; charset=utf-8",
		".svg": "image/svg+xml",
	}
	assets := map[string]*uiAsset{}
	err := fs.WalkDir(uiFiles, "ui/static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := types[path.Ext(p)]
		if !ok {
			return fmt.Errorf("no content type for %s", p)
		}
		sum := sha256.Sum256(b)
		assets[path.Base(p)] = &uiAsset{body: b, contentType: ct, version: hex.EncodeToString(sum[:6])}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return assets
}

func parseUITemplate(page string) *template.Template {
	funcs := template.FuncMap{
		"utc":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 MST") },
		"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"deref":   func(f *float64) float64 { return *f },
		"statusClass": func(s string) string {
			switch s {
			case "alive":
				return "ok"
			case "suspect", "left":
				return "warn"
			}
			return "bad"
		},
	}
	return template.Must(template.New(page).Funcs(funcs).ParseFS(uiFiles, "ui/templates/layout.html", "ui/templates/"+page+".html"))
}

// serveStatic serves the embedded assets. A request carrying the asset's
// current version (?v=, as every page links them) may be cached for good;
// any other is revalidated through the ETag.
func (a *API) serveStatic(w http.ResponseWriter, r *http.Request) {
	asset := uiAssets[strings.TrimPrefix(route.Param(r.Context(), "filepath"), "/")]
	if asset == nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", asset.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", `"`+asset.version+`"`)
	if r.URL.Query().Get("v") == asset.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(asset.body))
}

// uiPage is what the layout template renders; Body is the page's own data.
type uiPage struct {
	Page, Title string
	// Prefix is the path prefix of every link: the path of
	// --web.external-url when it has one, else the route prefix.
	Prefix      string
	MetricsPath string
	AdminAPI    bool
	BuildInfo   map[string]string
	Cluster     *ClusterStatus
	Now         time.Time
	Body        any
}

// Asset returns the versioned URL of an embedded asset.
func (p *uiPage) Asset(name string) string {
	v := ""
	if a := uiAssets[name]; a != nil {
		v = "?v=" + a.version
	}
	return p.Prefix + "/static/" + name + v
}

// clusterStatus returns this node's view of the cluster, or nil without a
// cluster.
func (a *API) clusterStatus() *ClusterStatus {
	if a.opts.Cluster == nil {
		return nil
	}
	st := a.opts.Cluster.Status()
	return &st
}

// linkPrefix is the path prefix of links, form actions and asset URLs.
func (a *API) linkPrefix() string {
	if a.opts.ExternalPathPrefix != "" {
		return a.opts.ExternalPathPrefix
	}
	return a.opts.RoutePrefix
}

func (a *API) renderUI(w http.ResponseWriter, page, title string, body any) {
	a.renderUIStatus(w, http.StatusOK, page, title, body)
}

// renderUIStatus renders a page with the given status code (400 for a
// metrics page whose selector does not parse).
func (a *API) renderUIStatus(w http.ResponseWriter, code int, page, title string, body any) {
	data := &uiPage{
		Page: page, Title: title, Prefix: a.linkPrefix(), MetricsPath: a.opts.MetricsPath,
		AdminAPI: a.opts.EnableAdminAPI, BuildInfo: a.opts.BuildInfo, Cluster: a.clusterStatus(),
		Now: time.Now(), Body: body,
	}
	var buf bytes.Buffer
	if err := uiTemplates[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		a.logger.Error("render page", "page", page, "err", err)
		http.Error(w, "error rendering page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", uiContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
