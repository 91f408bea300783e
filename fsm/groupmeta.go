package fsm

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// What a group keeps beside its metrics (issue #15): its own expiry, set by
// a push's X-Pushgateway-Expire-After header, and who made its last push.
// Both travel in the push command and in snapshots.

// MaxExpireAfter bounds a group's own expiry, so that a deadline always
// fits in int64 nanoseconds.
const MaxExpireAfter = 100 * 365 * 24 * time.Hour

// maxPushedByBytes bounds the user name and the remote address a push
// records.
const maxPushedByBytes = 256

// Expiry is a group's own expiry: Set by a push with
// X-Pushgateway-Expire-After, the group expires After past its last push,
// or never if After is 0. Unset (the zero value), --push.expire-after
// decides.
type Expiry struct {
	Set   bool
	After time.Duration
}

// PushedBy says who made a push: the authenticated user ("" without basic
// auth) and the client's address as the accepting node saw it.
type PushedBy struct {
	User       string
	RemoteAddr string
}

// AddSaturating returns t + d in Unix nanoseconds, held at the ends of int64
// instead of wrapping: a family time near the end (a crafted snapshot may
// hold one) must not make a group expire at once.
func AddSaturating(t int64, d time.Duration) int64 {
	s := t + int64(d)
	switch {
	case d > 0 && s < t:
		return math.MaxInt64
	case d < 0 && s > t:
		return math.MinInt64
	}
	return s
}

// hasMeta reports whether the group keeps an expiry or a pusher.
func (g *Group) hasMeta() bool { return g.Expiry.Set || !g.LastPushBy.IsZero() }

// IsZero reports whether nothing is known of who pushed.
func (p PushedBy) IsZero() bool { return p.User == "" && p.RemoteAddr == "" }

// ExpiresAtUnixNano returns when the group expires by its own expiry, and
// false if it has none (unset, or never).
func (g *Group) ExpiresAtUnixNano() (int64, bool) {
	if !g.Expiry.Set || g.Expiry.After == 0 {
		return 0, false
	}
	return AddSaturating(g.LastPushUnixNano(), g.Expiry.After), true
}

func validateExpiry(e Expiry) error {
	if !e.Set {
		if e.After != 0 {
			return errors.New("expiry duration without the set flag")
		}
		return nil
	}
	if e.After < 0 || e.After > MaxExpireAfter {
		return fmt.Errorf("expire-after %s outside [0, %s]", e.After, MaxExpireAfter)
	}
	return nil
}

func validatePushedBy(p PushedBy) error {
	// In a fixed order: the refusal's text is the same on every node.
	for _, f := range [...]struct{ what, s string }{{"user", p.User}, {"remote address", p.RemoteAddr}} {
		if len(f.s) > maxPushedByBytes {
			return fmt.Errorf("pushed-by %s longer than %d bytes", f.what, maxPushedByBytes)
		}
		if !utf8.ValidString(f.s) {
			return fmt.Errorf("pushed-by %s is not valid UTF-8", f.what)
		}
	}
	return nil
}

// Features is a set of additions to the command encoding and the snapshot
// format that a build may or may not understand. A node that decodes an
// entry it does not understand stops (Apply is total only for what a build
// knows), so a cluster uses an addition only when every member understands
// it: members tell each other theirs, and the accepting node checks a
// command's Features against them before it proposes the command.
type Features uint32

const (
	// FeatureGroupMeta: push commands and stored groups with an own expiry
	// and who pushed (Command.ExpireAfter, Command.PushedBy).
	FeatureGroupMeta Features = 1 << iota
	// FeatureDeleteMatching: OpDeleteMatching.
	FeatureDeleteMatching
)

// SupportedFeatures are the features this build understands.
const SupportedFeatures = FeatureGroupMeta | FeatureDeleteMatching

// Needs returns the features a cluster must support to apply the command.
//
// A restore or an import needs FeatureGroupMeta when one of its groups
// carries an expiry or a pusher: older builds refuse such group records, so
// they would refuse the command that the others apply.
func (c *Command) Needs() Features {
	var f Features
	if c.ExpireAfter.Set || !c.PushedBy.IsZero() {
		f |= FeatureGroupMeta
	}
	for _, g := range c.Import {
		if g.hasMeta() {
			f |= FeatureGroupMeta
		}
	}
	if c.Op == OpRestore {
		// A snapshot that does not read is refused by validation anyway.
		if info, err := ValidateSnapshot(c.Snapshot); err == nil && info.GroupMeta {
			f |= FeatureGroupMeta
		}
	}
	if c.Op == OpDeleteMatching {
		f |= FeatureDeleteMatching
	}
	return f
}

// String names the features, for messages.
func (f Features) String() string {
	var s string
	add := func(name string) {
		if s != "" {
			s += ", "
		}
		s += name
	}
	if f&FeatureGroupMeta != 0 {
		add("per-group expiry and who pushed")
	}
	if f&FeatureDeleteMatching != 0 {
		add("delete by selector")
	}
	if rest := f &^ SupportedFeatures; rest != 0 {
		add(fmt.Sprintf("features %#x", uint32(rest)))
	}
	return s
}
