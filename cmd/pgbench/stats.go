package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// percentile returns the p-quantile (0 < p <= 1) of the samples with the
// nearest-rank method: the smallest sample such that at least p of all samples
// are less than or equal to it. sorted must be in ascending order; an empty
// slice gives 0.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(n))) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= n {
		rank = n - 1
	}
	return sorted[rank]
}

// latencySummary is what every latency figure reports.
type latencySummary struct {
	n             int
	p50, p99, max time.Duration
}

// String is the summary as the progress log shows it.
func (s latencySummary) String() string {
	return fmt.Sprintf("p50 %v p99 %v max %v", s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond), s.max.Round(time.Microsecond))
}

func summarize(samples []time.Duration) latencySummary {
	s := append([]time.Duration(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return latencySummary{}
	}
	return latencySummary{n: len(s), p50: percentile(s, 0.50), p99: percentile(s, 0.99), max: s[len(s)-1]}
}

// median of the values (the mean of the two middle ones for an even count);
// NaN for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// better says which direction of a figure is an improvement.
type better int

const (
	betterNone   better = iota // no ratio (error counts, group counts)
	betterHigher               // throughput
	betterLower                // latency, size, memory
)

// unit says how a figure is printed.
type unit int

const (
	unitCount   unit = iota // plain integer
	unitRate                // per second
	unitSeconds             // a duration given in seconds
	unitBytes               // a size in bytes
	unitFlag                // 0/1: printed as "yes"/"-"
)

// formatValue prints v in unit u; NaN (a figure not measured) prints "–".
func formatValue(v float64, u unit) string {
	if math.IsNaN(v) {
		return "–"
	}
	switch u {
	case unitRate:
		return groupDigits(v) + "/s"
	case unitSeconds:
		return formatSeconds(v)
	case unitBytes:
		return formatBytes(v)
	case unitFlag:
		if v != 0 {
			return "yes"
		}
		return "no"
	default:
		return groupDigits(v)
	}
}

// formatSeconds prints a duration with three significant digits in the unit
// that suits it: "850 µs", "1.23 ms", "154 ms", "2.41 s".
func formatSeconds(s float64) string {
	switch {
	case s == 0:
		return "0"
	case s < 1e-3:
		return sig3(s*1e6) + " µs"
	case s < 1:
		return sig3(s*1e3) + " ms"
	default:
		return sig3(s) + " s"
	}
}

// sig3 prints v with three significant digits but never in exponent form and
// never with more integer digits dropped.
func sig3(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// formatBytes prints a size in binary units: "512 B", "690 KiB", "6.74 MiB".
func formatBytes(b float64) string {
	switch {
	case math.Abs(b) < 1024:
		return strconv.FormatFloat(b, 'f', 0, 64) + " B"
	case math.Abs(b) < 1024*1024:
		return sig3(b/1024) + " KiB"
	case math.Abs(b) < 1024*1024*1024:
		return sig3(b/(1024*1024)) + " MiB"
	default:
		return sig3(b/(1024*1024*1024)) + " GiB"
	}
}

// groupDigits rounds v to an integer and separates thousands: 12,345.
// Values below 10 keep one decimal (a rate of 2.5/s matters).
func groupDigits(v float64) string {
	if math.Abs(v) < 10 && v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	neg := v < 0
	s := strconv.FormatFloat(math.Abs(math.Round(v)), 'f', 0, 64)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ratioWords are the words for "ours is better" and "ours is worse".
var ratioWords = map[unit][2]string{
	unitRate:    {"faster", "slower"},
	unitSeconds: {"faster", "slower"},
	unitBytes:   {"smaller", "larger"},
}

// formatRatio compares ours with upstream's figure and says it in the
// direction that reads naturally: "×53 faster" when ours is 53 times better
// (throughput 53 times higher, or latency 53 times lower), "×2.1 slower" when
// upstream is 2.1 times better, "≈ same" within 5%. Empty when there is
// nothing to compare.
func formatRatio(upstream, ours float64, b better, u unit) string {
	if b == betterNone || math.IsNaN(upstream) || math.IsNaN(ours) || upstream <= 0 || ours <= 0 {
		return ""
	}
	r := ours / upstream // > 1: ours better, for higher-is-better figures
	if b == betterLower {
		r = upstream / ours
	}
	words, ok := ratioWords[u]
	if !ok {
		words = [2]string{"better", "worse"}
	}
	if r < 1.05 && r > 1/1.05 {
		return "≈ same"
	}
	if r >= 1 {
		return "×" + ratioNumber(r) + " " + words[0]
	}
	return "×" + ratioNumber(1/r) + " " + words[1]
}

func ratioNumber(r float64) string {
	switch {
	case r >= 10:
		return groupDigits(r)
	default:
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
}

// parseInts parses "100,1000,10000" (underscores allowed: 10_000).
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.ReplaceAll(strings.TrimSpace(f), "_", "")
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return out, nil
}

// parseList splits a comma-separated list and checks every item is allowed.
func parseList(s string, allowed ...string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == f
		}
		if !ok {
			return nil, fmt.Errorf("%q is not one of %s", f, strings.Join(allowed, ", "))
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return out, nil
}
