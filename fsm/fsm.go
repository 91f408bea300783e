package fsm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// FSM is the state machine: the metric groups, the indexes over them and
// the cached exposition. All methods are safe for concurrent use; Apply and
// Restore must be called by one goroutine at a time (raft does that).
type FSM struct {
	reserved map[string]ReservedFamily

	mu      sync.RWMutex
	groups  map[string]*Group
	ix      *index
	applied uint64
	// series is the number of metrics in all groups (the quota
	// --push.max-total-series counts them).
	series int
	// imported records the import of an upstream persistence file; it
	// survives wipes, so a file is imported once per cluster.
	imported *ImportRecord
	// exposed caches the merged exposition; nil when stale. exposeGen
	// counts the times it went stale.
	exposed   []*ExposedFamily
	exposeGen uint64
	// exposeMu is held by whoever builds the exposition (Exposed), before
	// mu: only its holder orders the exposition (nameEntry.sorted), so the
	// order stays still while the holder settles and reads it without mu.
	exposeMu sync.Mutex
	// beforeSettle, if set (by tests), runs in Exposed once the changed
	// groups are taken, on the goroutine that settles them, before it
	// does, without mu.
	beforeSettle func()
	// onChange is called after every applied command and restore.
	onChange []func()
}

// New returns an empty FSM. reserved lists the families the gateway exposes
// itself; it must be the same on every node (it is derived from the binary).
func New(reserved map[string]ReservedFamily) *FSM {
	if reserved == nil {
		reserved = map[string]ReservedFamily{}
	}
	groups := map[string]*Group{}
	return &FSM{reserved: reserved, groups: groups, ix: newIndex(groups)}
}

// Result is the outcome of applying one command.
type Result struct {
	// Err is the consistency verdict of a rejected push in upstream's
	// wording, nil if the command was applied. A rejected push still
	// records push_failure_time_seconds.
	Err error
	// Index is the log index the command was applied at (set by the
	// replication layer; 0 when unknown).
	Index uint64
}

// ConsistencyError carries the reason a push was rejected by the state
// machine. The HTTP layer answers it with 400.
type ConsistencyError struct{ Msg string }

func (e *ConsistencyError) Error() string { return e.Msg }

// QuotaError is the verdict on a push that would take the store past a
// cluster-wide quota (Command.MaxGroups, MaxSeries): nothing changes. The
// HTTP layer answers it with 429.
type QuotaError struct{ Msg string }

func (e *QuotaError) Error() string { return e.Msg }

// Apply applies one encoded command at the given log index and returns its
// result. Apply is total: every entry that decodes yields a deterministic
// result, the same on every node, and never a panic; a command that is not
// well-formed (see Validate) changes nothing and its Result.Err wraps
// ErrInvalidCommand. Only bytes that do not decode at all stop the node:
// they come from a newer build (a new operation or field), and applying
// the rest of the log without them would make this node diverge, so Apply
// panics with a message that says to upgrade.
func (s *FSM) Apply(logIndex uint64, data []byte) *Result {
	cmd, err := DecodeCommand(data)
	return s.ApplyDecoded(logIndex, cmd, err)
}

// ApplyDecoded applies log entry logIndex from what DecodeCommand returned
// for its data, as Apply does: decoding is pure, so a batch of entries may
// be decoded on several goroutines and then applied in order. A decode
// error stops the node, as in Apply.
func (s *FSM) ApplyDecoded(logIndex uint64, cmd *Command, decodeErr error) *Result {
	if decodeErr != nil {
		panic(fmt.Sprintf("fsm: cannot read log entry %d: %v; it was written by a newer build: "+
			"upgrade this node to the cluster's version (refusing to skip it and diverge)", logIndex, decodeErr))
	}
	return s.ApplyCommand(logIndex, cmd)
}

// ApplyCommand applies a decoded command (see Apply). It takes ownership of
// cmd.Families (they are sanitized in place and stored).
func (s *FSM) ApplyCommand(logIndex uint64, cmd *Command) *Result {
	res, hooks := func() (*Result, []func()) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if logIndex > s.applied {
			s.applied = logIndex
		}
		if err := validate(cmd, false); err != nil {
			return &Result{Err: err}, nil
		}
		return s.applyLocked(cmd), s.onChange
	}()
	res.Index = logIndex
	for _, f := range hooks {
		f()
	}
	return res
}

// OnChange registers f to be called after every applied command and every
// restore, on the applying goroutine and without the FSM's lock. f must not
// block. It is for node-local caches (the HTTP layer keeps its rendered
// exposition warm with it) and never affects the state.
func (s *FSM) OnChange(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = append(s.onChange[:len(s.onChange):len(s.onChange)], f)
}

func (s *FSM) changed() {
	s.mu.RLock()
	hooks := s.onChange
	s.mu.RUnlock()
	for _, f := range hooks {
		f()
	}
}

func (s *FSM) applyLocked(cmd *Command) *Result {
	if op, ok := operations[cmd.Op]; ok {
		return op.apply(s, cmd)
	}
	return &Result{Err: fmt.Errorf("%w: unknown op %d", ErrInvalidCommand, cmd.Op)}
}

// applyPush mirrors upstream's write loop: reject timestamps, sanitize,
// check consistency, then either store the new group or record the failure.
func (s *FSM) applyPush(cmd *Command) *Result {
	names := sortedNames(cmd.Labels)
	key := groupingKey(cmd.Labels, names)
	prev := s.groups[key]
	labels := groupLabelsOf(prev, cmd.Labels, names)

	if hasTimestamps(cmd.Families) {
		s.recordFailure(prev, key, labels, cmd)
		return &Result{Err: ErrTimestamp}
	}
	gp := groupingPairsOf(prev, labels)
	for _, mf := range cmd.Families {
		sanitizeLabels(mf, gp)
	}
	compactLabels(cmd.Families, gp.sortedStored())

	next := &Group{Key: key, Labels: labels}
	var keep func(*Family) bool // which of prev's families stay
	if prev != nil {
		next = prev.clone()
		if cmd.Op == OpPut {
			keep = func(f *Family) bool { return f.Name() == PushTimeMetricName || f.Name() == PushFailureTimeMetricName }
		}
	}
	// The push's families in one allocation (a later family of the same
	// name replaces an earlier one, as upstream).
	stored := make([]Family, 0, len(cmd.Families)+2)
	slab := newMetricSlab(cmd.Families)
	for _, mf := range cmd.Families {
		stored = append(stored, familyOf(mf, cmd.TimeUnixNano, &slab))
	}
	stored = appendTimestampFamilies(stored, next, gp, cmd.TimeUnixNano, false)
	next.Families = next.Families.with(keep, pointersTo(stored))

	if err := s.checkQuotas(prev, next, cmd); err != nil {
		return &Result{Err: err}
	}
	if !cmd.Unchecked {
		errs := s.check(prev, next)
		if len(errs) == 0 && !s.ix.consistent() {
			// The store is inconsistent already. Upstream's full gather
			// rejects every push until that is mended; see whether this
			// push mends it.
			errs = s.storeErrorsWith(prev, next)
		}
		if len(errs) > 0 {
			s.recordFailure(prev, key, labels, cmd)
			return &Result{Err: &ConsistencyError{Msg: prometheus.MultiError(errs).MaybeUnwrap().Error()}}
		}
	}
	next.Expiry, next.LastPushBy = cmd.ExpireAfter, cmd.PushedBy
	s.setGroup(key, next)
	return &Result{}
}

// storeErrorsWith returns the store errors (index.storeErrors) of the
// store with next in place of prev, and leaves the store as it was.
// Callers hold s.mu.
func (s *FSM) storeErrorsWith(prev, next *Group) []error {
	key := next.Key
	s.ix.replaceGroup(prev, next)
	s.groups[key] = next
	defer func() {
		s.ix.replaceGroup(next, prev)
		if prev == nil {
			delete(s.groups, key)
		} else {
			s.groups[key] = prev
		}
	}()
	if s.ix.consistent() {
		return nil
	}
	return s.ix.storeErrors()
}

// Consistent reports whether the store as a whole would pass upstream's
// full gather check. It is false only after unchecked pushes or a failed
// push that created a group whose timestamps collide with another group's.
func (s *FSM) Consistent() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ix.consistent()
}

// groupLabelsOf returns the grouping labels of a command on the group
// stored as prev (nil: none yet): prev's own, the same labels (the key is
// made of them), or a new list of the command's, whose names are sorted.
func groupLabelsOf(prev *Group, grouping map[string]string, names []string) GroupLabels {
	if prev != nil {
		return prev.Labels
	}
	return groupLabels(grouping, names)
}

// recordFailure sets push_failure_time_seconds of the group (creating it if
// needed) to the command's time, and adds a zero push_time_seconds if the
// group has none, as upstream does for a rejected push.
func (s *FSM) recordFailure(prev *Group, key string, labels GroupLabels, cmd *Command) {
	var next *Group
	if prev == nil && cmd.MaxGroups > 0 && uint64(len(s.groups)) >= cmd.MaxGroups {
		return // recording it would create a group beyond the quota
	}
	if prev == nil {
		next = &Group{Key: key, Labels: labels}
	} else {
		next = prev.clone()
	}
	gp := groupingPairsOf(prev, labels)
	stored := appendTimestampFamilies(make([]Family, 0, 2), next, gp, cmd.TimeUnixNano, true)
	next.Families = next.Families.with(nil, pointersTo(stored))
	s.setGroup(key, next)
}

// setGroup swaps a group in (next != nil) or out (next == nil) and keeps
// the indexes and caches in step. Callers hold s.mu.
func (s *FSM) setGroup(key string, next *Group) {
	prev := s.groups[key]
	if prev == nil && next == nil {
		return
	}
	s.ix.replaceGroup(prev, next)
	s.series += next.seriesCount() - prev.seriesCount()
	if next == nil {
		delete(s.groups, key)
	} else {
		s.groups[key] = next
	}
	s.exposed = nil
	s.exposeGen++
}

// AppliedIndex returns the log index of the last applied command.
func (s *FSM) AppliedIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// Groups returns all groups sorted by grouping key. The groups are
// immutable; the slice belongs to the caller.
func (s *FSM) Groups() []*Group {
	s.mu.RLock()
	out := s.groupsUnsorted()
	s.mu.RUnlock()
	sortByKey(out)
	return out
}

// groupsUnsorted returns all groups in no order: one pass over the map,
// which is all a caller needs the lock for (sorting 100,000 group keys
// takes 50–100 ms: Groups sorts after releasing the lock, a snapshot when
// it is written). Callers hold s.mu.
func (s *FSM) groupsUnsorted() []*Group {
	out := make([]*Group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	return out
}

// sortByKey sorts groups by grouping key.
func sortByKey(groups []*Group) {
	slices.SortFunc(groups, func(a, b *Group) int { return strings.Compare(a.Key, b.Key) })
}

// Group returns the group with the given grouping labels, or nil.
func (s *FSM) Group(labels map[string]string) *Group {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.groups[GroupingKey(labels)]
}

// checkQuotas refuses a push that would create a group beyond
// cmd.MaxGroups or take the metrics of all groups beyond cmd.MaxSeries. A
// push that does not grow the store always passes, so deleting groups and
// pushing smaller ones free room.
func (s *FSM) checkQuotas(prev, next *Group, cmd *Command) error {
	if max := cmd.MaxGroups; max > 0 && prev == nil && uint64(len(s.groups)) >= max {
		return &QuotaError{Msg: fmt.Sprintf("quota --push.max-groups=%d reached: the cluster holds %d groups; delete groups or raise the quota", max, len(s.groups))}
	}
	if max := cmd.MaxSeries; max > 0 {
		if grow := next.seriesCount() - prev.seriesCount(); grow > 0 && uint64(s.series+grow) > max {
			return &QuotaError{Msg: fmt.Sprintf("quota --push.max-total-series=%d: the cluster holds %d series and this push would add %d; delete groups or raise the quota", max, s.series, grow)}
		}
	}
	return nil
}

// Series returns the number of metrics in all groups.
func (s *FSM) Series() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.series
}

// Len returns the number of groups.
func (s *FSM) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.groups)
}

// errInconsistentRestore is returned by Restore when a snapshot does not
// describe a valid state.
var errInconsistentRestore = errors.New("snapshot holds two groups with the same grouping key")
