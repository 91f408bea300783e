package fsm

import (
	"encoding/binary"
	"sync"

	dto "github.com/prometheus/client_model/go"
)

// Interning: the same label pair, family name and help text are stored
// once, whatever the number of groups holding them.
//
// A store of many groups pushed by the same kind of job holds the same
// family names, help texts and label pairs (kind="bench", le="0.5",
// status="ok") in every group. Decoded one by one, each copy costs a
// LabelPair (56 bytes), two string headers and the bytes, and one more
// object for the collector to mark. decodeFamilies takes them from one
// table shared by the whole process instead: stored messages are never
// modified, so one message can stand for all equal ones, and interning
// changes no byte of any answer, only which pointers are equal.
//
// The table is bounded: it holds the values decoded since the last two
// rotations, a rotation happening every internGeneration new values. A
// value that keeps being decoded stays; one that is not is dropped from the
// table (the groups holding it keep their copy), so label values unique to
// one push (a timestamp, a path) cannot make it grow. Interned values are
// allocated on their own, not in a command's slab, so the table never keeps
// a slab alive.

// internGeneration is how many new values the table takes between two
// rotations.
const internGeneration = 1 << 16

// interned is the process's intern table.
var interned = newInternTable()

// internTable maps label pairs (by name and value) and strings to the
// shared copy. Safe for concurrent use: the parallel restore decodes on
// every core.
type internTable struct {
	mu sync.Mutex
	// pairs and strs are the current generation, oldPairs and oldStrs the
	// one before; a value found in the old one moves to the current one.
	pairs, oldPairs map[string]*dto.LabelPair
	strs, oldStrs   map[string]*string
	added           int
}

func newInternTable() *internTable {
	return &internTable{pairs: map[string]*dto.LabelPair{}, strs: map[string]*string{}}
}

// pair returns the shared label pair with this name and value (both set).
func (t *internTable) pair(name, value []byte) *dto.LabelPair {
	// The key: the name's length, the name, the value (unambiguous for any
	// bytes), built on the stack for usual sizes.
	var scratch [128]byte
	key := binary.AppendUvarint(scratch[:0], uint64(len(name)))
	key = append(append(key, name...), value...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if lp, ok := t.pairs[string(key)]; ok {
		return lp
	}
	lp, ok := t.oldPairs[string(key)]
	if !ok {
		// One allocation for the pair and its string headers, one for the
		// bytes.
		k := string(key)
		n := len(k) - len(name) - len(value)
		p := &struct {
			lp          dto.LabelPair
			name, value string
		}{name: k[n : n+len(name)], value: k[n+len(name):]}
		p.lp.Name, p.lp.Value = &p.name, &p.value
		lp = &p.lp
		t.rotate()
		t.pairs[k] = lp
		return lp
	}
	t.rotate()
	t.pairs[string(key)] = lp
	return lp
}

// str returns the shared copy of a string.
func (t *internTable) str(v []byte) *string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.strs[string(v)]; ok {
		return p
	}
	p, ok := t.oldStrs[string(v)]
	if !ok {
		s := string(v)
		p = &s
	}
	t.rotate()
	t.strs[*p] = p
	return p
}

// rotate makes room for one more value: after internGeneration values the
// current generation becomes the old one and the old one is dropped.
func (t *internTable) rotate() {
	t.added++
	if t.added <= internGeneration {
		return
	}
	t.oldPairs, t.pairs = t.pairs, make(map[string]*dto.LabelPair, len(t.pairs))
	t.oldStrs, t.strs = t.strs, make(map[string]*string, len(t.strs))
	t.added = 1
}

// size returns the number of values in the table.
func (t *internTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pairs) + len(t.oldPairs) + len(t.strs) + len(t.oldStrs)
}

// metricTypes are the shared values of MetricFamily.Type, by type.
var metricTypes = func() (t [maxMetricType + 1]dto.MetricType) {
	for i := range t {
		t[i] = dto.MetricType(i)
	}
	return t
}()
