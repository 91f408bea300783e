package httpapi

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// Name and help of the authorization self-metric. The name is reserved on
// every node (ReservedFamilies), with or without --web.authorization-file,
// so that every node's state machine gives the same verdicts; the counter
// is exposed only when the file is given.
const (
	deniedName = "pushgateway_authorization_denied_total"
	deniedHelp = "Requests refused with 403 by --web.authorization-file, by reason (push: a push or delete outside the user's jobs; admin: the admin API without admin: true)."
)

// authzFamilies are the authorization self-metrics, reserved like the
// others.
var authzFamilies = map[string]fsm.ReservedFamily{
	deniedName: {Type: dto.MetricType_COUNTER, Help: deniedHelp},
}

// Reasons of a denial (the reason label of deniedName).
const (
	deniedPush  = "push"
	deniedAdmin = "admin"
)

// newDeniedCounter returns the denial counter with both reasons at 0,
// registered in reg when reg is not nil.
func newDeniedCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: deniedName, Help: deniedHelp}, []string{"reason"})
	c.WithLabelValues(deniedPush)
	c.WithLabelValues(deniedAdmin)
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// denialSource ends a denial message: the flag for a user the file lists,
// and that the file does not list the user otherwise.
func denialSource(known bool) string {
	if known {
		return "(--web.authorization-file)"
	}
	return "(not listed in --web.authorization-file)"
}

// mayWrite checks a push (PUT, POST) or delete of a group of job against
// --web.authorization-file, before anything is read from the body or
// proposed. When the user may not, it has answered 403 naming the user and
// the job and returns false. Without the file every write may go on.
func (a *API) mayWrite(w http.ResponseWriter, r *http.Request, job string) bool {
	if a.opts.Authorization == nil {
		return true
	}
	rules := a.opts.Authorization.Rules()
	user := a.requestUser(r)
	if rules.MayPush(user, job) {
		return true
	}
	verb := "push to"
	if r.Method == http.MethodDelete {
		verb = "delete from"
	}
	msg := fmt.Sprintf("user %q may not %s job %q %s", user, verb, job, denialSource(rules.Known(user)))
	a.denied.WithLabelValues(deniedPush).Inc()
	a.logger.Info("write refused by --web.authorization-file", "user", user, "job", job, "method", r.Method, "source", r.RemoteAddr)
	http.Error(w, msg, http.StatusForbidden)
	return false
}

// adminOnly guards an admin route: with --web.authorization-file, only a
// user with admin: true gets through; anyone else gets 403 naming the user
// and nothing of the route runs. Without the file it changes nothing
// (--web.enable-admin-api alone decides, by registering the routes at all).
//
// Every /api/v1/admin route must go through adminOnly, inside the
// instrumenting wrapper so that refusals are counted and carry the CORS
// headers, e.g.
//
//	r.Put("/admin/delete", wrap("api/v1/admin/delete", a.adminOnly(a.apiDelete)))
func (a *API) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	if a.opts.Authorization == nil {
		return refuseCrossSitePost(h)
	}
	return refuseCrossSitePost(func(w http.ResponseWriter, r *http.Request) {
		rules := a.opts.Authorization.Rules()
		user := a.requestUser(r)
		if rules.IsAdmin(user) {
			h(w, r)
			return
		}
		a.denied.WithLabelValues(deniedAdmin).Inc()
		a.logger.Info("admin request refused by --web.authorization-file", "user", user, "method", r.Method, "path", r.URL.Path, "source", r.RemoteAddr)
		source := "(needs admin: true in --web.authorization-file)"
		if !rules.Known(user) {
			source = denialSource(false)
		}
		a.respondError(w, http.StatusForbidden, fmt.Errorf("user %q may not use the admin API %s", user, source))
	})
}

// refuseCrossSitePost answers 403 to an admin POST sent by a web page of
// another origin. /api/v1 allows every origin (Access-Control-Allow-Origin:
// *, as upstream), and a POST without a body needs no preflight, so any page
// a user of the network visits could otherwise delete by selector. Browsers
// always send Origin with such a POST; curl and clients send none.
func refuseCrossSitePost(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); r.Method == http.MethodPost && origin != "" {
			if u, err := url.Parse(origin); err != nil || u.Host != r.Host {
				http.Error(w, fmt.Sprintf("admin POST from a web page of another origin (%s) refused; use PUT, or send it without an Origin header", origin), http.StatusForbidden)
				return
			}
		}
		h(w, r)
	}
}
