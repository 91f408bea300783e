package fsm

// Expiry (OpExpire): which groups are old enough, and their removal. A
// group expires by its own expiry (X-Pushgateway-Expire-After of its last
// push) or, without one, by --push.expire-after.

// LastPushUnixNano is the time expiry judges a group by: the time of its
// last successful push, which is what push_time_seconds shows, or, for a
// group that never had a successful push (push_time_seconds is 0, the group
// was created by a rejected push), the time of its last change.
func (g *Group) LastPushUnixNano() int64 {
	if f := g.Families.Get(PushTimeMetricName); f != nil && f.GaugeValue() != 0 {
		return f.TimeUnixNano
	}
	var last int64
	for _, f := range g.Families {
		if f.TimeUnixNano > last {
			last = f.TimeUnixNano
		}
	}
	return last
}

// expired reports whether the group has expired at nowUnixNano: by its own
// expiry if it has one (Group.Expiry), otherwise by the cutoff of
// --push.expire-after (a last push before it; 0 expires nothing).
func (g *Group) expired(nowUnixNano, cutoffUnixNano int64) bool {
	if g.Expiry.Set {
		at, ok := g.ExpiresAtUnixNano()
		return ok && at <= nowUnixNano
	}
	return cutoffUnixNano != 0 && g.LastPushUnixNano() < cutoffUnixNano
}

// ExpiryCandidates returns the grouping labels of the groups expired at
// nowUnixNano (see expired), in grouping-key order, at most max of them
// (max <= 0: all). The leader proposes them in an OpExpire command with the
// same cutoff and its clock as the command's time; Apply checks each
// again.
func (s *FSM) ExpiryCandidates(nowUnixNano, cutoffUnixNano int64, max int) []map[string]string {
	// The leader asks every second: one pass over the groups under the read
	// lock, sorting only what expired, so neither the scan nor a sort of
	// every group key holds writes back in a large store.
	s.mu.RLock()
	var expired []*Group
	for _, g := range s.groups {
		if g.expired(nowUnixNano, cutoffUnixNano) {
			expired = append(expired, g)
		}
	}
	s.mu.RUnlock()
	sortByKey(expired)
	if max > 0 && len(expired) > max {
		expired = expired[:max]
	}
	var out []map[string]string
	for _, g := range expired {
		out = append(out, g.Labels.Map())
	}
	return out
}

// applyExpire removes the listed groups that are still expired at the
// command's time: a group pushed again after the leader made its list
// stays.
func (s *FSM) applyExpire(cmd *Command) *Result {
	for _, labels := range cmd.Expire {
		key := GroupingKey(labels)
		if g := s.groups[key]; g != nil && g.expired(cmd.TimeUnixNano, cmd.CutoffUnixNano) {
			s.setGroup(key, nil)
		}
	}
	return &Result{}
}
