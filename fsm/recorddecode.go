package fsm

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Decoding the families of a stored group (a snapshot record's) straight
// into records (metric.go), with the slabs and the counting pass of
// familydecode.go in records mode: no message slabs are made only to be
// copied into records and thrown away. A metric of the fast shape holds at
// most one value message here (countMetric); any other family is decoded
// by proto and made into records as a push's are.

// decodeStoredFamilies decodes the families of a stored group (a snapshot
// record's), stored at times[i], straight into families of records: the
// fast ones without a message in between; the others from proto's.
func decodeStoredFamilies(raws [][]byte, times []int64, how familyDecoding) ([]Family, error) {
	how.records = true
	slow := how.scratch.slowList(len(raws))
	s, _, err := countFamilies(raws, how, slow)
	if err != nil {
		return nil, err
	}
	out := make([]Family, len(raws))
	for i, raw := range raws {
		if slow[i] != nil {
			out[i] = familyOf(slow[i], times[i], nil)
		} else {
			out[i] = s.storedFamily(raw, times[i])
		}
	}
	return out, nil
}

// storedFamily returns the next family from raw, which countFamily
// accepted, as stored at unixNano: its records filled in records mode.
func (s *familySlabs) storedFamily(raw []byte, unixNano int64) Family {
	var h familyHeader
	first := s.nRecords
	s.familyFields(raw, &h, func(v []byte) {
		s.record(&s.records[s.nRecords], v)
		s.nRecords++
	})
	f := Family{hdr: s.decoding.scratch.internCache().header(h), TimeUnixNano: unixNano}
	if s.nRecords > first {
		f.metrics = s.records[first:s.nRecords:s.nRecords]
	}
	return f
}

// record fills r from raw, a metric countMetric accepted in records mode.
func (s *familySlabs) record(r *Metric, raw []byte) {
	r.labels = s.metricFields(raw, func(num protowire.Number, v []byte) {
		switch num {
		case metricGauge:
			r.kind |= kindGauge | recordValue(r, v)
		case metricCounter:
			r.kind |= kindCounter | recordValue(r, v)
		case metricUntyped:
			r.kind |= kindUntyped | recordValue(r, v)
		}
	}, func(ts int64) {
		r.kind |= hasTimestamp
		r.ts = ts
	})
}

// recordValue reads a Gauge, Counter or Untyped message holding at most its
// value into r, and returns hasValue if it held one.
func recordValue(r *Metric, raw []byte) metricKind {
	var has metricKind
	eachField(raw, func(_ protowire.Number, _ protowire.Type, _ []byte, x uint64) bool {
		r.value, has = math.Float64frombits(x), hasValue
		return true
	})
	return has
}
