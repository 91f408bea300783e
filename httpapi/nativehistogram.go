package httpapi

import (
	"fmt"
	"math"

	dto "github.com/prometheus/client_model/go"
)

// Interval kinds of a native histogram bucket in /api/v1/metrics, as in
// the Prometheus HTTP API: 0 "(]", 1 "[)", 2 "()", 3 "[]".
const (
	boundsLeftOpen  = 0
	boundsRightOpen = 1
	boundsClosed    = 3
)

// nativeBucket is one populated bucket of a native histogram.
type nativeBucket struct {
	boundaries   int
	lower, upper float64
	count        string
}

// nativeBuckets renders the sample count and the populated buckets of a
// native histogram (negative buckets from the lowest, the zero bucket, then
// positive buckets) the way upstream 1.11's API does.
func nativeBuckets(h *dto.Histogram) (string, [][]any) {
	isFloat := h.GetSampleCountFloat() > 0 || h.GetZeroCountFloat() > 0
	schema := h.GetSchema()

	var neg, pos []nativeBucket
	walkSpans(h.GetNegativeSpan(), isFloat, h.GetNegativeDelta(), h.GetNegativeCount(), func(idx int32, c string) {
		neg = append(neg, nativeBucket{boundsRightOpen, -exponentialBound(idx, schema), -exponentialBound(idx-1, schema), c})
	})
	walkSpans(h.GetPositiveSpan(), isFloat, h.GetPositiveDelta(), h.GetPositiveCount(), func(idx int32, c string) {
		pos = append(pos, nativeBucket{boundsLeftOpen, exponentialBound(idx-1, schema), exponentialBound(idx, schema), c})
	})

	var out [][]any
	for i := len(neg) - 1; i >= 0; i-- {
		out = append(out, neg[i].json())
	}
	zt := h.GetZeroThreshold()
	if isFloat {
		if h.GetZeroCountFloat() != 0 {
			out = append(out, nativeBucket{boundsClosed, -zt, zt, fmt.Sprint(h.GetZeroCountFloat())}.json())
		}
	} else if h.GetZeroCount() != 0 {
		out = append(out, nativeBucket{boundsClosed, -zt, zt, fmt.Sprint(h.GetZeroCount())}.json())
	}
	for _, b := range pos {
		out = append(out, b.json())
	}
	if isFloat {
		return fmt.Sprint(h.GetSampleCountFloat()), out
	}
	return fmt.Sprint(h.GetSampleCount()), out
}

func (b nativeBucket) json() []any {
	return []any{b.boundaries, fmt.Sprintf("%v", b.lower), fmt.Sprintf("%v", b.upper), b.count}
}

// walkSpans visits the populated buckets of one side of a native histogram
// with their index and absolute count. Integer histograms store counts as
// deltas to the previous bucket; float histograms store absolute counts.
func walkSpans(spans []*dto.BucketSpan, isFloat bool, deltas []int64, counts []float64, visit func(idx int32, count string)) {
	var idx int32
	var abs int64
	i := 0
	for s, span := range spans {
		if s == 0 {
			idx = span.GetOffset()
		} else {
			idx += span.GetOffset()
		}
		for n := uint32(0); n < span.GetLength(); n++ {
			if isFloat {
				if i < len(counts) && counts[i] != 0 {
					visit(idx, fmt.Sprint(counts[i]))
				}
			} else if i < len(deltas) {
				abs += deltas[i]
				if abs != 0 {
					visit(idx, fmt.Sprint(uint64(abs)))
				}
			}
			i++
			idx++
		}
	}
}

// exponentialBound returns the upper bound of bucket idx in the standard
// exponential schema: 2^(idx * 2^-schema). The last finite bucket ends at
// math.MaxFloat64 rather than +Inf, as in Prometheus.
func exponentialBound(idx, schema int32) float64 {
	if schema < 0 {
		exp := int(idx) << -schema
		if exp == 1024 {
			return math.MaxFloat64
		}
		return math.Ldexp(1, exp)
	}
	fracIdx := idx & ((1 << schema) - 1)
	frac := math.Exp2(float64(fracIdx)/float64(int32(1)<<schema)) / 2
	exp := (int(idx) >> schema) + 1
	if frac == 0.5 && exp == 1025 {
		return math.MaxFloat64
	}
	return math.Ldexp(frac, exp)
}
