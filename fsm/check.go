package fsm

import (
	"fmt"
	"strings"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// ReservedFamily describes a metric family the gateway exposes itself (go_*,
// process_*, pushgateway_*). Pushed families of the same name must have the
// same type; their help is replaced by this one in the exposition.
type ReservedFamily struct {
	Type dto.MetricType
	Help string
}

// check returns the errors that storing next in place of prev would cause
// in a full gather of the store, in the wording of client_golang's
// Gatherers, which upstream uses for its check. Only the families next adds
// or replaces are examined, against the indexes: the cost is proportional
// to the pushed group. Errors come in a deterministic order (by family
// name, then metric order).
func (s *FSM) check(prev, next *Group) []error {
	added := make([]*Family, 0, len(next.Families))
	for _, f := range next.Families {
		if prev == nil || prev.Families.Get(f.Name()) != f {
			added = append(added, f) // in name order
		}
	}

	var errs []error
	addedTypes := map[string]dto.MetricType{}
	seen := map[uint64]struct{}{}
	for _, f := range added {
		name, typ := f.Name(), f.Type()
		r, reserved := s.reserved[name]
		if reserved && r.Type != typ {
			errs = append(errs, fmt.Errorf("gathered metric family %s has type %s but should have %s", name, typ, r.Type))
			continue
		}
		liveTyp, live := s.ix.liveType(name, next.Key)
		if live && liveTyp != typ {
			for m := range f.All() {
				errs = append(errs, fmt.Errorf("collected metric %q { %s} is not a %s", name, m, liveTyp))
			}
			continue
		}
		if !reserved && !live {
			// A name new to the gateway: its suffixes must not clash.
			exists := func(n string) (dto.MetricType, bool) {
				if t, ok := addedTypes[n]; ok {
					return t, true
				}
				if f := next.Families.Get(n); f != nil && prev != nil && prev.Families.Get(n) == f {
					return f.Type(), true
				}
				if r, ok := s.reserved[n]; ok {
					return r.Type, true
				}
				return s.ix.liveType(n, next.Key)
			}
			if err := suffixCollision(name, typ, exists); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		addedTypes[name] = typ

		var replaced map[uint64]int32
		if prev != nil {
			if old := prev.Families.Get(name); old != nil {
				replaced = make(map[uint64]int32, len(old.Metrics()))
				for m := range old.All() {
					replaced[seriesHash(name, m)]++
				}
			}
		}
		for m := range f.All() {
			if err := metricConsistency(name, typ, m); err != nil {
				errs = append(errs, err)
				continue
			}
			h := seriesHash(name, m)
			_, dupInPush := seen[h]
			if dupInPush || s.ix.copies(h)-replaced[h] > 0 {
				errs = append(errs, fmt.Errorf("collected metric %q { %s} was collected before with the same name and label values", name, m))
				continue
			}
			seen[h] = struct{}{}
		}
	}
	return errs
}

// suffixCollision reports a clash of a new family name with the suffixes
// (_count, _sum, _bucket) that summaries and histograms expand to, like
// client_golang's check for a family seen for the first time in a gather.
func suffixCollision(name string, typ dto.MetricType, exists func(string) (dto.MetricType, bool)) error {
	base := ""
	switch {
	case strings.HasSuffix(name, "_count"):
		base = strings.TrimSuffix(name, "_count")
	case strings.HasSuffix(name, "_sum"):
		base = strings.TrimSuffix(name, "_sum")
	case strings.HasSuffix(name, "_bucket"):
		base = strings.TrimSuffix(name, "_bucket")
	}
	if base != "" {
		if t, ok := exists(base); ok {
			switch {
			case t == dto.MetricType_SUMMARY && !strings.HasSuffix(name, "_bucket"):
				return fmt.Errorf("collected metric named %q collides with previously collected summary named %q", name, base)
			case t == dto.MetricType_HISTOGRAM:
				return fmt.Errorf("collected metric named %q collides with previously collected histogram named %q", name, base)
			}
		}
	}
	if typ == dto.MetricType_SUMMARY || typ == dto.MetricType_HISTOGRAM {
		for _, suffix := range []string{"_count", "_sum"} {
			if _, ok := exists(name + suffix); ok {
				return fmt.Errorf("collected histogram or summary named %q collides with previously collected metric named %q", name, name+suffix)
			}
		}
	}
	if typ == dto.MetricType_HISTOGRAM {
		if _, ok := exists(name + "_bucket"); ok {
			return fmt.Errorf("collected histogram named %q collides with previously collected metric named %q", name, name+"_bucket")
		}
	}
	return nil
}

// metricConsistency checks one metric against its family's type and the
// rules for label pairs, with client_golang's wording. Label pairs are
// sorted by name already (sanitizeLabels).
func metricConsistency(name string, typ dto.MetricType, m *Metric) error {
	if !m.holds(typ) {
		return fmt.Errorf("collected metric %q { %s} is not a %s", name, m, typ)
	}
	summary := m.full != nil && m.full.Summary != nil
	prev := ""
	for _, lp := range m.Labels() {
		ln := lp.GetName()
		if ln == prev {
			return fmt.Errorf("collected metric %q { %s} has two or more labels with the same name: %s", name, m, ln)
		}
		if !model.UTF8Validation.IsValidLabelName(ln) || strings.HasPrefix(ln, model.ReservedLabelPrefix) {
			return fmt.Errorf("collected metric %q { %s} has a label with an invalid name: %s", name, m, ln)
		}
		if summary && ln == model.QuantileLabel {
			return fmt.Errorf("collected metric %q { %s} must not have an explicit %q label", name, m, model.QuantileLabel)
		}
		if !utf8.ValidString(lp.GetValue()) {
			return fmt.Errorf("collected metric %q { %s} has a label named %q whose value is not utf8: %#v", name, m, ln, lp.GetValue())
		}
		prev = ln
	}
	return nil
}
