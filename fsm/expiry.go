package fsm

import ()

// Expiry (OpExpire): which groups are old enough, and their removal.

// LastPushUnixNano is the time expiry judges a group by: the time of its
// last successful push, which is what push_time_seconds shows, or, for a
// group that never had a successful push (push_time_seconds is 0, the group
// was created by a rejected push), the time of its last change.
func (g *Group) LastPushUnixNano() int64 {
	if f, ok := g.Families[PushTimeMetricName]; ok && gaugeValue(f.MF) != 0 {
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

// ExpiryCandidates returns the grouping labels of the groups whose last push
// is older than cutoffUnixNano, in grouping-key order, at most max of them
// (max <= 0: all). The leader proposes them in an OpExpire command; Apply
// checks each again against the cutoff.
func (s *FSM) ExpiryCandidates(cutoffUnixNano int64, max int) []map[string]string {
	var out []map[string]string
	for _, g := range s.Groups() {
		if g.LastPushUnixNano() < cutoffUnixNano {
			out = append(out, g.Labels)
			if max > 0 && len(out) == max {
				break
			}
		}
	}
	return out
}

// applyExpire removes the listed groups that are still older than the
// cutoff: a group pushed again after the leader made its list stays.
func (s *FSM) applyExpire(cmd *Command) *Result {
	for _, labels := range cmd.Expire {
		key := GroupingKey(labels)
		if g := s.groups[key]; g != nil && g.LastPushUnixNano() < cmd.CutoffUnixNano {
			s.setGroup(key, nil)
		}
	}
	return &Result{}
}
