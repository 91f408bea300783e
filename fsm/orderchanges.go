package fsm

// The changes waiting to be settled into the exposition order
// (exposeorder.go): Apply notes each changed group once, and the settle
// sorts the changed families out by name.

// groupChange is a group changed since the exposition order was last
// settled: as the order holds it (old, nil: none) and as stored (new, nil:
// deleted).
type groupChange struct {
	old, new *Group
}

// familyChange is a change to one name's exposition order: the family of
// that name of group key as the order holds it (from) and as stored (to),
// either nil for none. They differ.
type familyChange struct {
	key      string
	from, to *Family
}

// noteChange records that a group changes from old to new (either nil),
// for the next settle of the order. Callers hold the state machine's lock.
func (ix *index) noteChange(old, new *Group) {
	key := groupKey(old, new)
	c, ok := ix.changed[key]
	if !ok {
		c.old = old
	}
	c.new = new
	if c.old == nil && c.new == nil {
		delete(ix.changed, key) // made and deleted since the last settle
		return
	}
	// Kept when the group is back as the order holds it (a consistency
	// check's trial replacement, undone): the trial may have taken a
	// name's last holder away, and the name's entry with its order.
	ix.changed[key] = c
}

// groupKey returns the key of old or, if it is nil, of new.
func groupKey(old, new *Group) string {
	if old != nil {
		return old.Key
	}
	return new.Key
}

// takeChanges returns the changed groups and leaves none, so that Apply
// records the next changes beside the ones being settled. Callers hold the
// state machine's lock and exposeMu (the spare map is the settler's).
func (ix *index) takeChanges() map[string]groupChange {
	taken := ix.changed
	ix.changed, ix.changedSpare = ix.changedSpare, nil
	if ix.changed == nil {
		ix.changed = map[string]groupChange{}
	}
	return taken
}

// settleChanges settles changes, taken from the index, into the order of
// each name of entries: the names of the changed families, and maybe
// others (unchanged, or with changes only to families without metrics).
// Callers hold exposeMu. Names are independent and each settles to the
// same order however its changes are batched, so ordering them on every
// core when there are many changes (a restored or freshly filled store:
// ordering a million metrics takes seconds of one core) gives the result
// of settling them one by one.
func (ix *index) settleChanges(entries map[string]*nameEntry, changes map[string]groupChange) {
	names, byName, adding := familyChanges(entries, changes)
	forEach(len(names), adding >= parallelSettle, func(i int) { entries[names[i]].settle(byName[i]) })
	if len(changes) <= shrinkChanged {
		// Larger maps are dropped: after a fill or a restore that would be
		// a slot for every group, for good.
		clear(changes)
		ix.changedSpare = changes
	}
}

// familyChanges sorts the families of the changed groups out by name, for
// the names of entries: a family that is not the same (by pointer) in the
// group as the order holds it and as stored is a change of its name's
// order. It returns the names with changes, their changes (in one
// allocation: a list of them per name and group), and the number of
// metrics to add. Both family lists are sorted by name, so one walk of
// them pairs the families of a name.
func familyChanges(entries map[string]*nameEntry, changes map[string]groupChange) (names []string, byName [][]familyChange, adding int) {
	at := map[string]int{} // position of a name in names
	var counts []int
	walk := func(emit func(i int, c familyChange)) {
		for key, c := range changes {
			var from, to Families
			if c.old != nil {
				from = c.old.Families
			}
			if c.new != nil {
				to = c.new.Families
			}
			for len(from) > 0 || len(to) > 0 {
				fc := familyChange{key: key}
				switch {
				case len(to) == 0 || len(from) > 0 && from[0].Name() < to[0].Name():
					fc.from, from = from[0], from[1:]
				case len(from) == 0 || to[0].Name() < from[0].Name():
					fc.to, to = to[0], to[1:]
				default:
					fc.from, fc.to, from, to = from[0], to[0], from[1:], to[1:]
				}
				named := fc.from
				if named == nil {
					named = fc.to
				}
				name := named.Name()
				e := entries[name]
				if e == nil {
					continue // a name without holders, or one not settled now
				}
				if !e.settled {
					fc.from = nil // its order holds nothing yet (see nameEntry.settled)
				}
				if fc.from == fc.to {
					continue // unchanged
				}
				i, ok := at[name]
				if !ok {
					i = len(names)
					at[name] = i
					names = append(names, name)
					counts = append(counts, 0)
				}
				emit(i, fc)
			}
		}
	}
	// Count, then fill lists of the exact size: a fill of 100,000 groups
	// settles changes of tens of thousands of groups at a time.
	total := 0
	walk(func(i int, fc familyChange) {
		counts[i]++
		total++
		adding += len(fc.to.Metrics())
	})
	all := make([]familyChange, total)
	byName = make([][]familyChange, len(names))
	off := 0
	for i, n := range counts {
		byName[i] = all[off : off : off+n]
		off += n
	}
	walk(func(i int, fc familyChange) { byName[i] = append(byName[i], fc) })
	return names, byName, adding
}

// settleAll takes and settles the changes of every name (a restored state,
// before it is swapped in).
func (ix *index) settleAll() {
	ix.settleChanges(ix.names, ix.takeChanges())
}

// shrinkChanged is the number of changed groups above which a settle drops
// the map of changes once it emptied it.
const shrinkChanged = 1024

// parallelSettle is the number of metrics to add from which a settle
// orders the names on every core.
const parallelSettle = 20000
