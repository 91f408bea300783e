package httpapi

import "net/http"

// requestUser returns the authenticated user of a request: the basic-auth
// user name when --web.config.file has basic_auth_users (exporter-toolkit
// checked the password before the request got here), "" otherwise. Without
// configured users a client's Authorization header proves nothing, so its
// name is not taken.
func (a *API) requestUser(r *http.Request) string {
	if a.opts.BasicAuthUsers == nil || !a.opts.BasicAuthUsers() {
		return ""
	}
	user, _, _ := r.BasicAuth()
	return user
}
