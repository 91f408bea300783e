package fsm

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// ErrInvalidCommand is wrapped by every error Validate returns: the command
// is not well-formed and must change nothing. The HTTP layer answers it
// with 400.
var ErrInvalidCommand = errors.New("invalid command")

// Validate is the one validator of the state machine: it decides whether a
// command is well-formed. The HTTP edge runs it before proposing, the
// leader on every forwarded command, restore and import on every group,
// and Apply once more, so a command that reaches the log and is not
// well-formed is refused identically on every node and changes nothing.
//
// Well-formed means: the fields belong to the operation; grouping labels
// have a non-empty job, valid non-reserved names and UTF-8 values; every
// family has a valid name, UTF-8 help and a type the exposition formats can
// express; every metric is non-nil and its histogram (classic or native)
// is shaped so that Prometheus can ingest it. For imported groups, and for
// pushes that skip the consistency check, every metric must also pass the
// per-metric rules of that check (value of the family's type, label names
// and values, no duplicate labels), since nothing else would catch them
// before they reach the exposition. For a checked push those rules are
// upstream's consistency verdicts: the check in Apply reports them and
// records the failure, exactly as upstream.
//
// Validate does not look at the state: a well-formed command may still be
// rejected by the consistency check.
func Validate(cmd *Command) error {
	return validate(cmd, true)
}

// validate is Validate; readSnapshot false leaves the snapshot of a
// restore to applyRestore, which reads it anyway (Apply reads it once).
func validate(cmd *Command, readSnapshot bool) error {
	if err := wellFormed(cmd, readSnapshot); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidCommand, err)
	}
	return nil
}

func wellFormed(cmd *Command, readSnapshot bool) error {
	if cmd == nil {
		return errors.New("no command")
	}
	op, ok := operations[cmd.Op]
	if !ok {
		return fmt.Errorf("unknown op %d", cmd.Op)
	}
	if err := cmd.checkFields(); err != nil {
		return err
	}
	return op.check(cmd, readSnapshot)
}

// ValidateGroup checks a group as it is stored (a snapshot's, restored by
// raft or the admin API): valid grouping labels, families in name order
// and one per name, every family and metric well-formed including the
// per-metric rules of the consistency check, and every metric exactly as
// sanitizeLabels leaves it (grouping and instance labels present, labels
// sorted) and without a timestamp: state that no push could have made is
// refused, since the indexes and the exposition rely on that shape.
func ValidateGroup(g *Group) error {
	return validateGroup(g, true)
}

// ValidateImport checks a group of an upstream persistence file before it
// is imported: like ValidateGroup, but its metrics may still lack their
// grouping labels or sorting, which the import adds.
func ValidateImport(g *Group) error {
	return validateGroup(g, false)
}

func validateGroup(g *Group, stored bool) error {
	if g == nil {
		return errors.New("no group")
	}
	if err := validateGroupingLabels(g.Labels); err != nil {
		return err
	}
	if err := validateExpiry(g.Expiry); err != nil {
		return fmt.Errorf("group %v: %v", g.Labels, err)
	}
	if err := validatePushedBy(g.LastPushBy); err != nil {
		return fmt.Errorf("group %v: %v", g.Labels, err)
	}
	for i, f := range g.Families {
		if f == nil {
			return fmt.Errorf("group %v: family %d of %d missing", g.Labels, i+1, len(g.Families))
		}
		name := f.Name()
		if i > 0 && g.Families[i-1].Name() >= name {
			return fmt.Errorf("group %v: family %q stored after %q", g.Labels, name, g.Families[i-1].Name())
		}
		var err error
		if stored {
			err = validateStoredFamily(f, g.Labels)
		} else {
			// Judged as it will be stored (the import sanitizes it).
			mf := f.proto()
			err = validateFamily(&mf, g.Labels, true)
		}
		if err != nil {
			return fmt.Errorf("group %v: %v", g.Labels, err)
		}
		for m := range f.All() {
			if m.HasTimestamp() {
				return fmt.Errorf("group %v: metric %q has a timestamp", g.Labels, name)
			}
			if stored && !storedAlready(m.Labels(), g.Labels) {
				return fmt.Errorf("group %v: metric %q is not stored as a push stores it (grouping and instance labels, sorted): %v", g.Labels, name, m)
			}
		}
	}
	return nil
}

// validateGroupingLabels requires a non-empty job label, valid and
// non-reserved label names and UTF-8 values.
func validateGroupingLabels(labels GroupLabels) error {
	if labels.Get("job") == "" {
		return errors.New("grouping key without a job label")
	}
	for name, value := range labels.All() {
		if !exposableLabelName(name) || strings.HasPrefix(name, model.ReservedLabelPrefix) {
			return fmt.Errorf("invalid grouping label name %q", name)
		}
		if !utf8.ValidString(value) {
			return fmt.Errorf("grouping label %q has a value that is not valid UTF-8: %q", name, value)
		}
	}
	return nil
}

// validateFamily checks one metric family pushed under the given grouping
// labels. With metricRules, every metric must also pass the per-metric
// rules of the consistency check, judged as it will be stored (with the
// grouping and instance labels added, as sanitizeLabels does).
func validateFamily(mf *dto.MetricFamily, grouping GroupLabels, metricRules bool) error {
	if mf == nil {
		return errors.New("empty metric family")
	}
	name, typ := mf.GetName(), mf.GetType()
	if err := validateHeader(name, mf.GetHelp(), typ, grouping); err != nil {
		return err
	}
	for _, m := range mf.GetMetric() {
		if m == nil {
			return fmt.Errorf("metric %q holds an empty metric", name)
		}
		var stored *Metric
		if metricRules {
			r := recordOf(asStored(m, grouping))
			stored = &r
		}
		if err := validateMetric(name, typ, m.GetLabel(), stored, m); err != nil {
			return err
		}
	}
	return nil
}

// validateStoredFamily is validateFamily with metricRules for a stored
// family, whose metrics are stored already (validateGroup checks that as
// well): the records are checked as they are, no message is built.
func validateStoredFamily(f *Family, grouping GroupLabels) error {
	name, typ := f.Name(), f.Type()
	if err := validateHeader(name, f.Help(), typ, grouping); err != nil {
		return err
	}
	for m := range f.All() {
		if err := validateMetric(name, typ, m.labels, m, m.full); err != nil {
			return err
		}
	}
	return nil
}

// validateHeader checks a family's name, help and type, pushed under the
// given grouping labels.
func validateHeader(name, help string, typ dto.MetricType, grouping GroupLabels) error {
	if !model.UTF8Validation.IsValidMetricName(name) {
		return fmt.Errorf("invalid metric name %q", name)
	}
	if !utf8.ValidString(help) {
		return fmt.Errorf("metric %q has a help text that is not valid UTF-8", name)
	}
	switch typ {
	case dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_SUMMARY, dto.MetricType_UNTYPED, dto.MetricType_HISTOGRAM:
	default:
		return fmt.Errorf("metric %q has type %s, which the exposition formats cannot express", name, typ)
	}
	if _, ok := grouping.Lookup(model.BucketLabel); ok && typ == dto.MetricType_HISTOGRAM {
		return fmt.Errorf("histogram %q cannot be pushed under a grouping label %q: its buckets carry that label", name, model.BucketLabel)
	}
	return nil
}

// validateMetric checks one metric of family name of type typ: its label
// pairs; with stored (the metric as it will be stored) the per-metric
// rules of the consistency check; and, in msg (its message, nil for a
// record of the usual shape, which has none of them), exemplars, summaries
// and histograms.
func validateMetric(name string, typ dto.MetricType, labels []*dto.LabelPair, stored *Metric, msg *dto.Metric) error {
	if err := validateLabelPairs(name, labels); err != nil {
		return err
	}
	if stored != nil {
		if err := metricConsistency(name, typ, stored); err != nil {
			return err
		}
	}
	if typ == dto.MetricType_HISTOGRAM {
		for _, lp := range labels {
			if lp.GetName() == model.BucketLabel {
				return fmt.Errorf("histogram %q has a label %q, which its buckets carry already", name, model.BucketLabel)
			}
		}
	}
	if msg != nil {
		return validateValues(name, msg)
	}
	return nil
}

// validateLabelPairs refuses nil label pairs, which no decoder produces but
// a command built in memory could hold, and label names the text formats
// cannot carry (see exposableLabelName). Other label rules are the
// consistency check's.
func validateLabelPairs(name string, pairs []*dto.LabelPair) error {
	for _, lp := range pairs {
		if lp == nil {
			return fmt.Errorf("metric %q has an empty label pair", name)
		}
		if strings.ContainsRune(lp.GetName(), ':') {
			return fmt.Errorf("metric %q has a label name with a colon, which the text formats cannot carry: %q", name, lp.GetName())
		}
	}
	return nil
}

// exposableLabelName reports whether a label name is valid (any UTF-8 name
// with --push.enable-utf8-names) and survives the text exposition: the
// text writer leaves a name with a colon unquoted, which no text parser
// reads back as a label name, so such names are refused.
func exposableLabelName(name string) bool {
	return model.UTF8Validation.IsValidLabelName(name) && !strings.ContainsRune(name, ':')
}

// asStored returns a copy of m with the label pairs it will be stored
// with: the grouping labels (overriding pushed values of the same name, as
// sanitizeLabels), an empty instance label if none, sorted by name. m is
// not modified.
func asStored(m *dto.Metric, grouping GroupLabels) *dto.Metric {
	if storedAlready(m.GetLabel(), grouping) {
		return m
	}
	labels := make([]*dto.LabelPair, 0, len(m.GetLabel())+grouping.Len()+1)
	done := make([]bool, grouping.Len())
	for _, lp := range m.GetLabel() {
		if i, ok := grouping.search(lp.GetName()); ok && !done[i] {
			done[i] = true
			lp = &dto.LabelPair{Name: lp.Name, Value: &grouping.sorted[i].Value}
		}
		labels = append(labels, lp)
	}
	for i, l := range grouping.sorted {
		if !done[i] {
			labels = append(labels, &dto.LabelPair{Name: &l.Name, Value: &l.Value})
		}
	}
	if !slices.ContainsFunc(labels, func(lp *dto.LabelPair) bool { return lp.GetName() == model.InstanceLabel }) {
		empty := ""
		labels = append(labels, &dto.LabelPair{Name: proto.String(model.InstanceLabel), Value: &empty})
	}
	sortLabelPairs(labels)
	return &dto.Metric{
		Label: labels, Gauge: m.Gauge, Counter: m.Counter, Summary: m.Summary,
		Untyped: m.Untyped, Histogram: m.Histogram, TimestampMs: m.TimestampMs,
	}
}

// storedAlready reports whether a metric's labels are as sanitizeLabels
// leaves them (sorted, with the grouping values and an instance label), as
// every metric of a stored group does: asStored would copy it unchanged.
func storedAlready(labels []*dto.LabelPair, grouping GroupLabels) bool {
	instance := false
	found := 0
	for i, lp := range labels {
		if i > 0 && labels[i-1].GetName() > lp.GetName() {
			return false
		}
		if v, ok := grouping.Lookup(lp.GetName()); ok {
			if v != lp.GetValue() {
				return false
			}
			found++
		}
		instance = instance || lp.GetName() == model.InstanceLabel
	}
	return instance && found == grouping.Len()
}

// validateValues checks the parts of a metric that the consistency check
// does not look at but Prometheus rejects on ingestion: exemplar labels,
// and the shape of summaries and histograms (classic and native).
func validateValues(name string, m *dto.Metric) error {
	if s := m.GetSummary(); s != nil {
		for _, q := range s.GetQuantile() {
			if q == nil {
				return fmt.Errorf("summary %q has an empty quantile", name)
			}
		}
	}
	for _, e := range exemplarsOf(m) {
		if err := validateExemplar(name, e); err != nil {
			return err
		}
	}
	if h := m.GetHistogram(); h != nil {
		return validateHistogram(name, h)
	}
	return nil
}

func exemplarsOf(m *dto.Metric) []*dto.Exemplar {
	var out []*dto.Exemplar
	if c := m.GetCounter(); c != nil && c.Exemplar != nil {
		out = append(out, c.Exemplar)
	}
	if h := m.GetHistogram(); h != nil {
		for _, b := range h.GetBucket() {
			if b != nil && b.Exemplar != nil {
				out = append(out, b.Exemplar)
			}
		}
		out = append(out, h.GetExemplars()...)
	}
	return out
}

// maxExemplarRunes is the OpenMetrics limit on the length of an exemplar's
// label names and values together, which Prometheus enforces.
const maxExemplarRunes = 128

func validateExemplar(name string, e *dto.Exemplar) error {
	if e == nil {
		return fmt.Errorf("metric %q has an empty exemplar", name)
	}
	runes := 0
	for _, lp := range e.GetLabel() {
		if lp == nil {
			return fmt.Errorf("metric %q has an exemplar with an empty label pair", name)
		}
		if !exposableLabelName(lp.GetName()) || !utf8.ValidString(lp.GetValue()) {
			return fmt.Errorf("metric %q has an exemplar with an invalid label %q=%q", name, lp.GetName(), lp.GetValue())
		}
		runes += utf8.RuneCountInString(lp.GetName()) + utf8.RuneCountInString(lp.GetValue())
	}
	if runes > maxExemplarRunes {
		return fmt.Errorf("metric %q has an exemplar whose labels have %d characters; at most %d are allowed", name, runes, maxExemplarRunes)
	}
	return nil
}

// Native histogram schemas Prometheus accepts: exponential -4 to 8, and
// custom buckets (-53).
const (
	minNativeSchema    = -4
	maxNativeSchema    = 8
	customBucketSchema = -53
)

// validateHistogram checks a histogram the way Prometheus and the text
// parsers do when they read one: classic buckets non-nil, with a bound and
// counts that are numbers and not negative (their order is free, as
// upstream's); for a native histogram a known schema, a valid zero bucket,
// spans that match the bucket counts, and no negative bucket counts.
func validateHistogram(name string, h *dto.Histogram) error {
	if c := h.GetSampleCountFloat(); math.IsNaN(c) || c < 0 {
		return fmt.Errorf("histogram %q has an invalid sample count %v", name, c)
	}
	for _, b := range h.GetBucket() {
		if b == nil {
			return fmt.Errorf("histogram %q has an empty bucket", name)
		}
		if c := b.GetCumulativeCountFloat(); math.IsNaN(c) || c < 0 {
			return fmt.Errorf("histogram %q has a bucket with an invalid count %v", name, c)
		}
		if math.IsNaN(b.GetUpperBound()) {
			return fmt.Errorf("histogram %q has a bucket with a NaN upper bound", name)
		}
	}
	native := len(h.GetPositiveSpan())+len(h.GetNegativeSpan())+len(h.GetPositiveDelta())+len(h.GetNegativeDelta())+
		len(h.GetPositiveCount())+len(h.GetNegativeCount()) > 0 || h.Schema != nil || h.ZeroThreshold != nil
	if !native {
		return nil
	}
	schema := h.GetSchema()
	if (schema < minNativeSchema || schema > maxNativeSchema) && schema != customBucketSchema {
		return fmt.Errorf("native histogram %q has schema %d; Prometheus accepts %d to %d and %d", name, schema, minNativeSchema, maxNativeSchema, customBucketSchema)
	}
	if zt := h.GetZeroThreshold(); math.IsNaN(zt) || zt < 0 {
		return fmt.Errorf("native histogram %q has an invalid zero threshold %v", name, zt)
	}
	if zc := h.GetZeroCountFloat(); math.IsNaN(zc) || zc < 0 {
		return fmt.Errorf("native histogram %q has an invalid zero count %v", name, zc)
	}
	if err := validateNativeSide(name, "positive", h.GetPositiveSpan(), h.GetPositiveDelta(), h.GetPositiveCount()); err != nil {
		return err
	}
	return validateNativeSide(name, "negative", h.GetNegativeSpan(), h.GetNegativeDelta(), h.GetNegativeCount())
}

// validateNativeSide checks the spans and buckets of one side of a native
// histogram: integer deltas or float counts (not both), as many as the
// spans cover, offsets after the first not negative, counts not negative.
func validateNativeSide(name, side string, spans []*dto.BucketSpan, deltas []int64, counts []float64) error {
	if len(deltas) > 0 && len(counts) > 0 {
		return fmt.Errorf("native histogram %q has both integer and float %s buckets", name, side)
	}
	var covered uint64
	for i, s := range spans {
		if s == nil {
			return fmt.Errorf("native histogram %q has an empty %s span", name, side)
		}
		if i > 0 && s.GetOffset() < 0 {
			return fmt.Errorf("native histogram %q has a negative offset in %s span %d", name, side, i)
		}
		covered += uint64(s.GetLength())
	}
	buckets := uint64(len(deltas) + len(counts))
	if covered != buckets {
		return fmt.Errorf("native histogram %q: %s spans cover %d buckets but %d are given", name, side, covered, buckets)
	}
	var count int64
	for i, d := range deltas {
		if (d > 0 && count > math.MaxInt64-d) || (d < 0 && count < math.MinInt64-d) {
			return fmt.Errorf("native histogram %q: %s bucket %d overflows", name, side, i)
		}
		count += d
		if count < 0 {
			return fmt.Errorf("native histogram %q: %s bucket %d has a negative count", name, side, i)
		}
	}
	for i, c := range counts {
		if math.IsNaN(c) || c < 0 {
			return fmt.Errorf("native histogram %q: %s bucket %d has an invalid count %v", name, side, i, c)
		}
	}
	return nil
}
