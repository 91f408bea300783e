package fsm

import (
	"encoding/binary"
	"sync"

	dto "github.com/prometheus/client_model/go"
)

// Interning: the same label pair, family name, help text and family header
// (family.go) are stored once, whatever the number of groups holding them.
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
// rotations, a rotation happening after internGeneration new values or
// internGenerationBytes of them. A value that keeps being decoded stays;
// one that is not is dropped from the table (the groups holding it keep
// their copy), so label values unique to one push (a timestamp, a path)
// cannot make it grow, nor can large ones keep much memory alive. Interned values are
// allocated on their own, not in a command's slab, so the table never keeps
// a slab alive.

// internGeneration and internGenerationBytes bound the new values the
// table takes between two rotations, by number and by bytes.
const (
	internGeneration      = 1 << 16
	internGenerationBytes = 4 << 20
)

// interned is the process's intern table.
var interned = newInternTable()

// internTable maps label pairs (by name and value) and strings to the
// shared copy. Safe for concurrent use: the parallel restore decodes on
// every core.
type internTable struct {
	mu sync.Mutex
	// pairs, strs and headers are the current generation, oldPairs,
	// oldStrs and oldHeaders the one before; a value found in the old one
	// moves to the current one.
	pairs, oldPairs     map[string]*internedPair
	strs, oldStrs       map[string]*string
	headers, oldHeaders map[headerKey]*familyHeader
	// added and addedBytes count the values taken since the last
	// rotation.
	added, addedBytes int
}

// internedPair is a shared label pair, its strings and its key in the
// table, in one allocation; the strings are parts of the key.
type internedPair struct {
	lp               dto.LabelPair
	name, value, key string
}

func newInternTable() *internTable {
	return &internTable{pairs: map[string]*internedPair{}, strs: map[string]*string{}, headers: map[headerKey]*familyHeader{}}
}

// pair returns the shared label pair with this name and value (both set).
func (t *internTable) pair(name, value []byte) *dto.LabelPair {
	var scratch [128]byte
	key := pairKey(scratch[:0], name, value)
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.pairs[string(key)]; ok {
		return &p.lp
	}
	p, ok := t.oldPairs[string(key)]
	if !ok {
		// One allocation for the pair and its string headers, one for the
		// bytes.
		k := string(key)
		n := len(k) - len(name) - len(value)
		p = &internedPair{name: k[n : n+len(name)], value: k[n+len(name):], key: k}
		p.lp.Name, p.lp.Value = &p.name, &p.value
	}
	t.rotate(len(key))
	t.pairs[p.key] = p
	return &p.lp
}

// pairKey appends a label pair's key to b: the name's length, the name,
// the value (unambiguous for any bytes); given room on the stack, it is
// built there for usual sizes.
func pairKey(b, name, value []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(name)))
	return append(append(b, name...), value...)
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
	t.rotate(len(v))
	t.strs[*p] = p
	return p
}

// headerKey is a family header's content: its strings and type, and which
// of them are present (a missing help and an empty one differ).
type headerKey struct {
	name, help, unit string
	typ              dto.MetricType
	present          uint8 // 1 name, 2 help, 4 unit, 8 type
}

func keyOf(h *familyHeader) headerKey {
	var k headerKey
	if h.name != nil {
		k.name, k.present = *h.name, k.present|1
	}
	if h.help != nil {
		k.help, k.present = *h.help, k.present|2
	}
	if h.unit != nil {
		k.unit, k.present = *h.unit, k.present|4
	}
	if h.typ != nil {
		k.typ, k.present = *h.typ, k.present|8
	}
	return k
}

// header returns the shared copy of a family header with the content of
// h: the first one seen, so the families of a name and help pushed by
// every group share one. Keyed by content, the headers of families decoded
// by proto (histograms, summaries: their strings are not interned) are
// shared too, and the table holds one entry per distinct header, its
// strings counted in its generation's bytes.
func (t *internTable) header(h familyHeader) *familyHeader {
	k := keyOf(&h)
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.headers[k]; ok {
		return p
	}
	p, ok := t.oldHeaders[k]
	if !ok {
		// A copy made here: taking h's address would move every
		// caller's h to the heap, found or not.
		p = new(familyHeader)
		*p = h
	}
	t.rotate(len(k.name) + len(k.help) + len(k.unit))
	t.headers[k] = p
	return p
}

// rotate makes room for one more value of the given size: beyond
// internGeneration values or internGenerationBytes the current generation
// becomes the old one and the old one is dropped.
func (t *internTable) rotate(size int) {
	t.added++
	t.addedBytes += size
	if t.added <= internGeneration && t.addedBytes <= internGenerationBytes {
		return
	}
	t.oldPairs, t.pairs = t.pairs, make(map[string]*internedPair, len(t.pairs))
	t.oldStrs, t.strs = t.strs, make(map[string]*string, len(t.strs))
	t.oldHeaders, t.headers = t.headers, make(map[headerKey]*familyHeader, len(t.headers))
	t.added, t.addedBytes = 1, size
}

// bytes returns the size of the values in the table.
func (t *internTable) bytes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, m := range []map[string]*internedPair{t.pairs, t.oldPairs} {
		for k := range m {
			n += len(k)
		}
	}
	for _, m := range []map[string]*string{t.strs, t.oldStrs} {
		for k := range m {
			n += len(k)
		}
	}
	return n
}

// size returns the number of values in the table.
func (t *internTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pairs) + len(t.oldPairs) + len(t.strs) + len(t.oldStrs) + len(t.headers) + len(t.oldHeaders)
}

// metricTypes are the shared values of MetricFamily.Type, by type.
var metricTypes = func() (t [maxMetricType + 1]dto.MetricType) {
	for i := range t {
		t[i] = dto.MetricType(i)
	}
	return t
}()

// internCache stands in front of the intern table for one goroutine that
// decodes many groups (a restore's decoding workers): it remembers the
// shared copies the table handed out, so a name, help text, label pair or
// header that every group holds takes the table's lock once per cache, not
// once per use. Restoring 100,000 groups took the lock 4.6 million times
// on two cores at once, and a tenth of the restore's CPU went to waiting
// for it. A copy the table has dropped since (a rotation) is still one
// shared copy; the table's next one is another, which changes only which
// pointers are equal. A nil cache is the table itself.
type internCache struct {
	strs    map[string]*string
	pairs   map[string]*dto.LabelPair // by pairKey
	headers map[headerKey]*familyHeader
}

func newInternCache() *internCache {
	return &internCache{strs: map[string]*string{}, pairs: map[string]*dto.LabelPair{}, headers: map[headerKey]*familyHeader{}}
}

// str is internTable.str through the cache.
func (c *internCache) str(v []byte) *string {
	if c == nil {
		return interned.str(v)
	}
	if p, ok := c.strs[string(v)]; ok {
		return p
	}
	p := interned.str(v)
	c.strs[*p] = p
	return p
}

// pair is internTable.pair through the cache.
func (c *internCache) pair(name, value []byte) *dto.LabelPair {
	if c == nil {
		return interned.pair(name, value)
	}
	var scratch [128]byte
	key := pairKey(scratch[:0], name, value)
	if p, ok := c.pairs[string(key)]; ok {
		return p
	}
	p := interned.pair(name, value)
	c.pairs[string(key)] = p
	return p
}

// header is internTable.header through the cache.
func (c *internCache) header(h familyHeader) *familyHeader {
	if c == nil {
		return interned.header(h)
	}
	k := keyOf(&h)
	if p, ok := c.headers[k]; ok {
		return p
	}
	p := interned.header(h)
	c.headers[k] = p
	return p
}
