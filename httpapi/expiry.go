package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/common/model"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// ExpireAfterHeader sets a pushed group's own expiry: a Prometheus duration
// (90s, 2h, 7d) after this push, or 0 for never. Without it, the group
// follows --push.expire-after.
const ExpireAfterHeader = "X-Pushgateway-Expire-After"

// requestExpiry reads ExpireAfterHeader.
func requestExpiry(r *http.Request) (fsm.Expiry, error) {
	values, ok := r.Header[http.CanonicalHeaderKey(ExpireAfterHeader)]
	if !ok {
		return fsm.Expiry{}, nil
	}
	if len(values) != 1 {
		return fsm.Expiry{}, fmt.Errorf("%s given %d times", ExpireAfterHeader, len(values))
	}
	d, err := model.ParseDuration(values[0])
	if err != nil {
		return fsm.Expiry{}, fmt.Errorf("%s: %w (a duration such as 90s, 2h or 7d, or 0 for never)", ExpireAfterHeader, err)
	}
	if time.Duration(d) > fsm.MaxExpireAfter {
		return fsm.Expiry{}, fmt.Errorf("%s: %s is longer than %s", ExpireAfterHeader, d, model.Duration(fsm.MaxExpireAfter))
	}
	return fsm.Expiry{Set: true, After: time.Duration(d)}, nil
}

// groupExpiry returns how long after its last push the group expires and
// when, by its own expiry or --push.expire-after (flag); ok is false for a
// group that never expires.
func groupExpiry(g *fsm.Group, flag time.Duration) (after time.Duration, at time.Time, ok bool) {
	switch {
	case g.Expiry.Set:
		after = g.Expiry.After
	case flag > 0:
		after = flag
	}
	if after <= 0 {
		return 0, time.Time{}, false
	}
	return after, time.Unix(0, fsm.AddSaturating(g.LastPushUnixNano(), after)), true
}
