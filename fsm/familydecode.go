package fsm

import (
	"math"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Decoding the metric families of one command or one snapshot group into
// few allocations.
//
// proto.Unmarshal allocates every message, every optional scalar and every
// string on its own: about nine objects for one gauge sample with one
// label. The families a command carries (or a snapshot group holds) live
// and die together, so decodeFamilies takes the common shape — name, help,
// type, metrics with labels, a gauge, counter or untyped value and a
// timestamp — into one slab per kind of object (all metrics of the command
// in one []dto.Metric, all values in one []float64), which the push stores
// as records (metric.go); a snapshot group's families are decoded straight
// into records (recorddecode.go) with the same counting pass and slabs.
// Family names, help texts, types and label pairs come from the process's
// intern table (intern.go), so no decoded label pair is ever modified;
// only a label pair lacking its name or value (which proto tells apart
// from an empty one) is decoded into a slab, its strings substrings of one
// string. A family of any other shape (summaries, histograms, exemplars,
// created timestamps, units, unknown fields, a field repeated that proto
// would merge) is decoded by proto.Unmarshal, so the result is always the
// message proto.Unmarshal would give (a fuzz test compares the two).
//
// The label slab (and a stored group's records) stays alive while any
// family of it is stored: a POST that keeps some families of an earlier
// push keeps that push's slabs. That is bounded by one push per stored
// family.

// metric family fields (io.prometheus.client), by number.
const (
	mfName   = 1
	mfHelp   = 2
	mfType   = 3
	mfMetric = 4
	mfUnit   = 5

	metricLabel       = 1
	metricGauge       = 2
	metricCounter     = 3
	metricUntyped     = 5
	metricTimestampMs = 6

	labelName  = 1
	labelValue = 2

	valueField = 1 // Gauge.value, Counter.value, Untyped.value

	maxMetricType = uint64(dto.MetricType_GAUGE_HISTOGRAM)
)

// familyDecoding says how decodeFamilies may lay out the label pairs.
type familyDecoding struct {
	// shared are label pairs to use, by pointer, for every decoded label
	// pair with the same name and value (a stored group's grouping labels:
	// every metric carries them). Only for families that are stored as
	// they are, never modified.
	shared []*dto.LabelPair
	// spareLabels is room left after every metric's labels, so that adding
	// that many (sanitizing adds the grouping labels) does not allocate; a
	// metric without labels gets none (sanitizing gives it a shared slice).
	spareLabels int
	// records: the families are decoded into stored records
	// (decodeStoredFamilies), so a metric of the fast shape holds at most
	// one value message.
	records bool
	// scratch, if set, is the decoding goroutine's reused lists and its
	// cache in front of the intern table (a restore's).
	scratch *decodeScratch
}

// familyCounts is how many objects of each kind the fast families need.
type familyCounts struct {
	families, metrics, labels, gauges, counters, untypeds int
	floats, timestamps, strings                           int
	// labelSlots counts the label pointer slots: the labels not shared
	// and the shared ones, with the spare room after each metric's.
	labelSlots int
	decoding   familyDecoding
	// interned are the interned strings and label pairs, in the order
	// family() takes them.
	internedStrs  []*string
	internedPairs []*dto.LabelPair
}

// decodeFamilies decodes raw metric family messages (protobuf wire format,
// as proto.Marshal writes them). raws[i] is read only during the call.
func decodeFamilies(raws [][]byte, how familyDecoding) ([]*dto.MetricFamily, error) {
	out := make([]*dto.MetricFamily, len(raws))
	s, fast, err := countFamilies(raws, how, out)
	if err != nil {
		return nil, err
	}
	if !fast {
		return out, nil
	}
	for i, raw := range raws {
		if out[i] == nil {
			out[i] = s.family(raw)
		}
	}
	return out, nil
}

// countFamilies counts what the families of the fast shape need and
// returns slabs of that size, and whether there are any; the others it
// decodes with proto into slow, at their index. (The slabs are a value:
// the callers keep them on the stack.)
func countFamilies(raws [][]byte, how familyDecoding, slow []*dto.MetricFamily) (familySlabs, bool, error) {
	// Interned values (intern.go): a name and a help text per family, a
	// label or two per metric, usually.
	c := familyCounts{decoding: how}
	// The slabs returned read these lists; the scratch takes them back now
	// because its goroutine decodes the slabs' families before it counts
	// the next record's (decodeGroup).
	c.internedStrs, c.internedPairs = how.scratch.internedLists(len(raws))
	defer func() { how.scratch.keepInternedLists(c.internedStrs[:0], c.internedPairs[:0]) }()
	var text []byte
	for i, raw := range raws {
		before, beforeText := c, len(text)
		var ok bool
		text, ok = countFamily(raw, &c, text)
		if !ok {
			c, text = before, text[:beforeText]
			mf := &dto.MetricFamily{}
			if err := proto.Unmarshal(raw, mf); err != nil {
				return familySlabs{}, false, err
			}
			slow[i] = mf
		}
	}
	if c.families == 0 {
		return familySlabs{}, false, nil
	}
	return newFamilySlabs(c, string(text)), true, nil
}

// countFamily checks that raw is a family of the fast shape and adds what
// it needs to c and its strings' bytes to text, in the order family()
// reads them.
func countFamily(raw []byte, c *familyCounts, text []byte) ([]byte, bool) {
	var seenName, seenHelp, seenType bool
	ok := eachField(raw, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) bool {
		switch {
		case num == mfName && typ == protowire.BytesType && !seenName:
			seenName = true
			c.internedStrs = append(c.internedStrs, c.decoding.scratch.internCache().str(v))
		case num == mfHelp && typ == protowire.BytesType && !seenHelp:
			seenHelp = true
			c.internedStrs = append(c.internedStrs, c.decoding.scratch.internCache().str(v))
		case num == mfType && typ == protowire.VarintType && !seenType && x <= maxMetricType:
			seenType = true
		case num == mfMetric && typ == protowire.BytesType:
			var ok bool
			text, ok = countMetric(v, c, text)
			return ok
		default:
			return false
		}
		return true
	})
	if ok {
		c.families++
	}
	return text, ok
}

func countMetric(raw []byte, c *familyCounts, text []byte) ([]byte, bool) {
	var seenGauge, seenCounter, seenUntyped, seenTS bool
	values, labels := 0, 0
	ok := eachField(raw, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) bool {
		switch {
		case num == metricLabel && typ == protowire.BytesType:
			var ok bool
			labels++
			text, ok = countLabel(v, c, text)
			return ok
		case num == metricGauge && typ == protowire.BytesType && !seenGauge:
			seenGauge = true
			c.gauges++
			values++
			return countValue(v, c)
		case num == metricCounter && typ == protowire.BytesType && !seenCounter:
			seenCounter = true
			c.counters++
			values++
			return countValue(v, c)
		case num == metricUntyped && typ == protowire.BytesType && !seenUntyped:
			seenUntyped = true
			c.untypeds++
			values++
			return countValue(v, c)
		case num == metricTimestampMs && typ == protowire.VarintType && !seenTS:
			seenTS = true
			c.timestamps++
		default:
			return false
		}
		return true
	})
	if c.decoding.records && values > 1 {
		return text, false // a record holds one value message
	}
	if ok {
		c.metrics++
		if labels > 0 {
			c.labelSlots += c.decoding.spareLabels
		}
	}
	return text, ok
}

func countLabel(raw []byte, c *familyCounts, text []byte) ([]byte, bool) {
	name, value, ok := labelFields(raw)
	if !ok {
		return text, false
	}
	c.labelSlots++
	if c.decoding.sharedPair(name, value) != nil {
		return text, true
	}
	if name != nil && value != nil {
		c.internedPairs = append(c.internedPairs, c.decoding.scratch.internCache().pair(name, value))
		return text, true
	}
	c.labels++
	if name != nil {
		c.strings++
		text = append(text, name...)
	}
	if value != nil {
		c.strings++
		text = append(text, value...)
	}
	return text, true
}

// labelFields returns the name and value of a LabelPair message (nil when
// absent), or false if it is not of the fast shape.
func labelFields(raw []byte) (name, value []byte, ok bool) {
	ok = eachField(raw, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) bool {
		switch {
		case num == labelName && typ == protowire.BytesType && name == nil:
			name = v
		case num == labelValue && typ == protowire.BytesType && value == nil:
			value = v
		default:
			return false
		}
		return true
	})
	return name, value, ok
}

// sharedPair returns the shared pair with this name and value, or nil.
func (d familyDecoding) sharedPair(name, value []byte) *dto.LabelPair {
	if name == nil || value == nil {
		return nil
	}
	for _, lp := range d.shared {
		if lp.GetName() == string(name) && lp.GetValue() == string(value) {
			return lp
		}
	}
	return nil
}

// countValue checks a Gauge, Counter or Untyped message holding at most its
// value.
func countValue(raw []byte, c *familyCounts) bool {
	seen := false
	return eachField(raw, func(num protowire.Number, typ protowire.Type, _ []byte, _ uint64) bool {
		if num != valueField || typ != protowire.Fixed64Type || seen {
			return false
		}
		seen = true
		c.floats++
		return true
	})
}

// familySlabs holds the objects of the fast families, handed out in the
// order countFamily counted them.
type familySlabs struct {
	families   []dto.MetricFamily
	metrics    []dto.Metric
	labels     []dto.LabelPair
	gauges     []dto.Gauge
	counters   []dto.Counter
	untypeds   []dto.Untyped
	floats     []float64
	timestamps []int64
	strings    []string
	// metricPtrs and labelPtrs are the families' Metric and the metrics'
	// Label slices, cut from one array each; nMetricPtrs and nLabelPtrs
	// count the slots handed out.
	metricPtrs              []*dto.Metric
	labelPtrs               []*dto.LabelPair
	nMetricPtrs, nLabelPtrs int
	// records are the stored records, in records mode (then the message
	// slabs above, but for the label pairs, are not made); nRecords
	// counts those handed out.
	records  []Metric
	nRecords int
	// text holds every string's bytes; strings are substrings of it.
	text     string
	decoding familyDecoding
	// internedStrs and internedPairs are what countFamily found in the
	// intern table, in order.
	internedStrs  []*string
	internedPairs []*dto.LabelPair
}

func newFamilySlabs(c familyCounts, text string) familySlabs {
	s := familySlabs{
		decoding:  c.decoding,
		labels:    make([]dto.LabelPair, c.labels),
		labelPtrs: make([]*dto.LabelPair, c.labelSlots),
		strings:   make([]string, c.strings),
		text:      text,

		internedStrs:  c.internedStrs,
		internedPairs: c.internedPairs,
	}
	if c.decoding.records {
		s.records = make([]Metric, c.metrics)
		return s
	}
	s.families = make([]dto.MetricFamily, c.families)
	s.metrics = make([]dto.Metric, c.metrics)
	s.metricPtrs = make([]*dto.Metric, c.metrics)
	s.gauges = make([]dto.Gauge, c.gauges)
	s.counters = make([]dto.Counter, c.counters)
	s.untypeds = make([]dto.Untyped, c.untypeds)
	s.floats = make([]float64, c.floats)
	s.timestamps = make([]int64, c.timestamps)
	return s
}

// next returns the next element of *slab and moves past it. The counting
// pass sized every slab, so running out is a bug: it panics.
func next[T any](slab *[]T) *T {
	p := &(*slab)[0]
	*slab = (*slab)[1:]
	return p
}

// str returns the next string slot holding the next len(v) bytes of text.
func (s *familySlabs) str(v []byte) *string {
	p := next(&s.strings)
	*p = s.text[:len(v)]
	s.text = s.text[len(v):]
	return p
}

// famStr returns the next name or help text, interned.
func (s *familySlabs) famStr() *string { return *next(&s.internedStrs) }

// family fills the next family from raw, which countFamily accepted.
func (s *familySlabs) family(raw []byte) *dto.MetricFamily {
	mf := next(&s.families)
	first := s.nMetricPtrs
	var h familyHeader
	s.familyFields(raw, &h, func(v []byte) {
		m := next(&s.metrics)
		s.metricPtrs[s.nMetricPtrs] = m
		s.nMetricPtrs++
		s.metric(m, v)
	})
	mf.Name, mf.Help, mf.Type = h.name, h.help, h.typ
	if s.nMetricPtrs > first {
		// The capacity ends at the family's last metric: appending to
		// mf.Metric never overwrites another family's.
		mf.Metric = s.metricPtrs[first:s.nMetricPtrs:s.nMetricPtrs]
	}
	return mf
}

// familyFields reads a family countFamily accepted: its name, help and type
// (interned) into h, and every metric's bytes, in order, to metric.
func (s *familySlabs) familyFields(raw []byte, h *familyHeader, metric func(v []byte)) {
	eachField(raw, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) bool {
		switch num {
		case mfName:
			h.name = s.famStr()
		case mfHelp:
			h.help = s.famStr()
		case mfType:
			h.typ = &metricTypes[x]
		case mfMetric:
			metric(v)
		}
		return true
	})
}

func (s *familySlabs) metric(m *dto.Metric, raw []byte) {
	m.Label = s.metricFields(raw, func(num protowire.Number, v []byte) {
		switch num {
		case metricGauge:
			g := next(&s.gauges)
			g.Value = s.value(v)
			m.Gauge = g
		case metricCounter:
			c := next(&s.counters)
			c.Value = s.value(v)
			m.Counter = c
		case metricUntyped:
			u := next(&s.untypeds)
			u.Value = s.value(v)
			m.Untyped = u
		}
	}, func(ts int64) {
		t := next(&s.timestamps)
		*t = ts
		m.TimestampMs = t
	})
}

// metricFields reads a metric countMetric accepted, for metric and record:
// its label pairs into the next label slots, which it returns (nil if
// there are none) with the spare room after them; each
// value message's field number and bytes to value, and its timestamp to
// timestamp.
func (s *familySlabs) metricFields(raw []byte, value func(num protowire.Number, v []byte), timestamp func(int64)) []*dto.LabelPair {
	first := s.nLabelPtrs
	eachField(raw, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) bool {
		switch num {
		case metricLabel:
			s.labelPtrs[s.nLabelPtrs] = s.label(v)
			s.nLabelPtrs++
		case metricTimestampMs:
			timestamp(int64(x))
		default:
			value(num, v)
		}
		return true
	})
	end := s.nLabelPtrs
	if end == first {
		// No labels, no spare room: sanitizing gives such a metric the
		// group's stored pairs, one slice for all of them.
		return nil
	}
	s.nLabelPtrs += s.decoding.spareLabels
	return s.labelPtrs[first:end:s.nLabelPtrs]
}

// label returns the label pair raw holds: a shared one, an interned one,
// or the next of the slab.
func (s *familySlabs) label(raw []byte) *dto.LabelPair {
	name, value, _ := labelFields(raw)
	if lp := s.decoding.sharedPair(name, value); lp != nil {
		return lp
	}
	if name != nil && value != nil {
		return *next(&s.internedPairs)
	}
	lp := next(&s.labels)
	if name != nil {
		lp.Name = s.str(name)
	}
	if value != nil {
		lp.Value = s.str(value)
	}
	return lp
}

// value reads a Gauge, Counter or Untyped message holding at most its value.
func (s *familySlabs) value(raw []byte) *float64 {
	var p *float64
	eachField(raw, func(_ protowire.Number, _ protowire.Type, _ []byte, x uint64) bool {
		p = next(&s.floats)
		*p = math.Float64frombits(x)
		return true
	})
	return p
}
