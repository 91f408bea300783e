package fsm

import (
	"iter"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Family is a stored metric family together with the time of the command
// that last wrote it (upstream's TimestampedMetricFamily). Its metrics are
// sanitized: every one carries the grouping labels and an instance label,
// label pairs sorted by name. A Family and its metrics are never modified
// once stored.
//
// The family's header (name, help, type, unit) is not kept in a
// dto.MetricFamily: that message is 96 bytes, 40 of them protobuf
// bookkeeping, for every family of every group (115 MB at 100,000 groups
// of 12 one-metric families). The header is shared instead by the families
// that have the same one (intern.go), and MF builds the message when one
// is needed.
type Family struct {
	hdr     *familyHeader // nil only in a Family made without a message
	metrics []Metric      // records (metric.go), often part of a slab
	// TimeUnixNano is the receive time of the command that stored it.
	TimeUnixNano int64
}

// familyHeader is a family's name, help, type and unit: the message's
// fields, by pointer, nil when absent. Never modified once made.
type familyHeader struct {
	name, help, unit *string
	typ              *dto.MetricType
}

// header returns the family's header (an empty one if it has none).
func (f *Family) header() *familyHeader {
	if f.hdr == nil {
		return &familyHeader{}
	}
	return f.hdr
}

// NewFamily returns the family of mf's header and metrics stored at
// unixNano. The records share the metrics' label pairs, and keep the
// metrics not of the usual shape (metric.go); mf's unknown fields are not
// kept.
func NewFamily(mf *dto.MetricFamily, unixNano int64) *Family {
	f := familyOf(mf, unixNano, nil)
	return &f
}

// familyOf is NewFamily as a value, for families stored together, with its
// records cut from slab (when it is not nil and has room for them).
func familyOf(mf *dto.MetricFamily, unixNano int64, slab *metricSlab) Family {
	if mf == nil {
		return Family{TimeUnixNano: unixNano}
	}
	h := interned.header(familyHeader{name: mf.Name, help: mf.Help, unit: mf.Unit, typ: mf.Type})
	return Family{hdr: h, metrics: slab.records(mf.Metric), TimeUnixNano: unixNano}
}

// metricSlab is room for the records of several families, made in one
// allocation and handed out in order.
type metricSlab []Metric

// newMetricSlab returns room for the records of the metrics of mfs.
func newMetricSlab(mfs []*dto.MetricFamily) metricSlab {
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return make(metricSlab, n)
}

// records returns the records of ms, cut from the slab if it has room, in
// an allocation of their own otherwise (nil for no metrics).
func (s *metricSlab) records(ms []*dto.Metric) []Metric {
	if len(ms) == 0 {
		return nil
	}
	if s == nil || len(*s) < len(ms) {
		own := make(metricSlab, len(ms))
		s = &own
	}
	rs := (*s)[:len(ms):len(ms)]
	*s = (*s)[len(ms):]
	for i, m := range ms {
		rs[i] = recordOf(m)
	}
	return rs
}

// MF returns the family as a message, its metrics built from the records
// (Metric.Proto). It shares the family's strings, label pairs and kept
// messages: callers must not modify them.
func (f *Family) MF() *dto.MetricFamily {
	mf := f.proto()
	return &mf
}

// proto is MF as a value.
func (f *Family) proto() dto.MetricFamily {
	h := f.header()
	var ms []*dto.Metric
	if len(f.metrics) > 0 {
		ms = messages(len(f.metrics), f.All())
	}
	return dto.MetricFamily{Name: h.name, Help: h.help, Type: h.typ, Unit: h.unit, Metric: ms}
}

// messages returns the messages of n records (Metric.Proto), in order.
func messages(n int, records iter.Seq[*Metric]) []*dto.Metric {
	ms := make([]*dto.Metric, 0, n)
	for m := range records {
		ms = append(ms, m.Proto())
	}
	return ms
}

// GaugeValue returns the value of the family's first metric as a gauge (0
// if it has none): what push_time_seconds and push_failure_time_seconds
// hold.
func (f *Family) GaugeValue() float64 {
	if len(f.metrics) == 0 {
		return 0
	}
	return f.metrics[0].GaugeValue()
}

// Help returns the family's help text ("" if it has none).
func (f *Family) Help() string {
	if h := f.header(); h.help != nil {
		return *h.help
	}
	return ""
}

// Type returns the family's type (counter, the message's default, if it has none).
func (f *Family) Type() dto.MetricType {
	if h := f.header(); h.typ != nil {
		return *h.typ
	}
	return dto.MetricType_COUNTER
}

// Metrics returns the family's metrics, shared: callers must not modify
// them. A record's address identifies the metric. A nil family has none.
func (f *Family) Metrics() []Metric {
	if f == nil {
		return nil
	}
	return f.metrics
}

// All yields the family's metrics by address, in order.
func (f *Family) All() iter.Seq[*Metric] {
	return func(yield func(*Metric) bool) {
		for i := range f.metrics {
			if !yield(&f.metrics[i]) {
				return
			}
		}
	}
}

// Families are the families of a group, one per name, sorted by name, and
// never changed once stored: a change builds a new list. A slice rather
// than a map: a map of a dozen families took about 450 bytes more per group
// (45 MB at 100,000 groups), and a lookup is a binary search among a few.
type Families []*Family

// pointersTo returns pointers to the families of a slab (families stored
// together, in one allocation), in its order.
func pointersTo(stored []Family) []*Family {
	ps := make([]*Family, len(stored))
	for i := range stored {
		ps[i] = &stored[i]
	}
	return ps
}

// NewFamilies returns the families sorted by name; of several with the
// same name, the last one given.
func NewFamilies(fams []*Family) Families {
	return Families(nil).with(nil, fams)
}

// Name returns the family's name.
func (f *Family) Name() string {
	if f.hdr != nil && f.hdr.name != nil {
		return *f.hdr.name
	}
	return ""
}

// Get returns the family named name, or nil.
func (fs Families) Get(name string) *Family {
	if i, ok := slices.BinarySearchFunc(fs, name, compareFamilyName); ok {
		return fs[i]
	}
	return nil
}

func compareFamilyName(f *Family, name string) int { return strings.Compare(f.Name(), name) }

// Names returns the names of the families, in order.
func (fs Families) Names() []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name()
	}
	return names
}

// with returns a new list: the families of fs that keep accepts (all if
// keep is nil), and add, which replace those of the same name (of several
// in add with the same name, the last). fs is not changed; add is
// reordered.
func (fs Families) with(keep func(*Family) bool, add []*Family) Families {
	slices.SortStableFunc(add, func(a, b *Family) int { return strings.Compare(a.Name(), b.Name()) })
	// Of equal names the last added wins.
	w := 0
	for i, f := range add {
		if i+1 < len(add) && add[i+1].Name() == f.Name() {
			continue
		}
		add[w] = f
		w++
	}
	sorted := add[:w]
	// Merge the two sorted lists: once to count (the list is stored for
	// good, so it gets its exact length), once to fill.
	merge := func(emit func(*Family)) {
		i := 0
		for _, f := range fs {
			for i < len(sorted) && sorted[i].Name() < f.Name() {
				emit(sorted[i])
				i++
			}
			if i < len(sorted) && sorted[i].Name() == f.Name() {
				emit(sorted[i]) // in place of f
				i++
				continue
			}
			if keep == nil || keep(f) {
				emit(f)
			}
		}
		for _, f := range sorted[i:] {
			emit(f)
		}
	}
	n := 0
	merge(func(*Family) { n++ })
	out := make(Families, 0, n)
	merge(func(f *Family) { out = append(out, f) })
	return out
}
