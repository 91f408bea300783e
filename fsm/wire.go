package fsm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Wire helpers shared by the command encoding (command.go) and the
// snapshot format (snapshot.go): label sets and group records, written
// with protowire in protobuf wire format. An imported group travels in a
// command exactly as a group is stored in a snapshot.

// appendLabels writes labels as repeated LabelPair messages in sorted order
// of names.
func appendLabels(b []byte, field protowire.Number, labels GroupLabels) []byte {
	for n, v := range labels.All() {
		// The pair is written in place, its length first.
		size := protowire.SizeTag(labelName) + protowire.SizeBytes(len(n)) + protowire.SizeTag(labelValue) + protowire.SizeBytes(len(v))
		b = protowire.AppendTag(b, field, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		b = protowire.AppendTag(b, labelName, protowire.BytesType)
		b = protowire.AppendString(b, n)
		b = protowire.AppendTag(b, labelValue, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	return b
}

// decodeLabelSet reads a message of repeated LabelPair in field 1.
func decodeLabelSet(b []byte) (map[string]string, error) {
	labels := map[string]string{}
	err := eachRepeatedMessage(b, "label set", func(v []byte) error {
		lp := &dto.LabelPair{}
		if err := proto.Unmarshal(v, lp); err != nil {
			return err
		}
		labels[lp.GetName()] = lp.GetValue()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return labels, nil
}

func encodeGroup(b []byte, g *Group) ([]byte, error) {
	b = appendLabels(b, groupFieldLabel, g.Labels)
	var scratch [32]int // the metric sizes of a family, usually on the stack
	sizes := scratch[:0]
	for _, f := range g.Families {
		// The family record, {time, metric family}, written in place: its
		// length and the message's are computed first.
		var mfSize int
		mfSize, sizes = familyMessageSize(f, sizes)
		recSize := protowire.SizeTag(famFieldTime) + protowire.SizeVarint(uint64(f.TimeUnixNano)) +
			protowire.SizeTag(famFieldMF) + protowire.SizeBytes(mfSize)
		b = protowire.AppendTag(b, groupFieldFamily, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(recSize))
		b = protowire.AppendTag(b, famFieldTime, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(f.TimeUnixNano))
		b = protowire.AppendTag(b, famFieldMF, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(mfSize))
		var err error
		if b, err = appendFamilyMessage(b, f, sizes); err != nil {
			return nil, fmt.Errorf("encode family %q of group %v: %w", f.Name(), g.Labels, err)
		}
	}
	return appendGroupMeta(b, g.Expiry, g.LastPushBy, metaFields{groupFieldExpireAfter, groupFieldPushedByUser, groupFieldPushedByAddr}), nil
}

// familyMessageSize is the size of f's MetricFamily message, as
// appendFamilyMessage writes it. The sizes of its metrics' messages are
// left in sizes (reused when it has room), for appendFamilyMessage.
func familyMessageSize(f *Family, sizes []int) (int, []int) {
	h := f.header()
	n := stringFieldSize(mfName, h.name) + stringFieldSize(mfHelp, h.help) + stringFieldSize(mfUnit, h.unit)
	if h.typ != nil {
		n += protowire.SizeTag(mfType) + protowire.SizeVarint(uint64(*h.typ))
	}
	sizes = sizes[:0]
	for i := range f.metrics {
		size := f.metrics[i].ProtoSize()
		sizes = append(sizes, size)
		n += protowire.SizeTag(mfMetric) + protowire.SizeBytes(size)
	}
	return n, sizes
}

// appendFamilyMessage appends f as a MetricFamily message: the bytes
// proto's deterministic marshalling gives f.MF() (fields in number order),
// without building that message. sizes are its metrics' sizes, from
// familyMessageSize.
func appendFamilyMessage(b []byte, f *Family, sizes []int) ([]byte, error) {
	h := f.header()
	b = appendStringField(b, mfName, h.name)
	b = appendStringField(b, mfHelp, h.help)
	if h.typ != nil {
		b = protowire.AppendTag(b, mfType, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(*h.typ))
	}
	for i := range f.metrics {
		b = protowire.AppendTag(b, mfMetric, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizes[i]))
		var err error
		if b, err = f.metrics[i].AppendProto(b); err != nil {
			return nil, err
		}
	}
	return appendStringField(b, mfUnit, h.unit), nil
}

func decodeGroup(b []byte, sc *decodeScratch) (*Group, error) {
	g := &Group{}
	var labels []Label
	// The families' metric families are decoded together, into shared
	// slabs (familydecode.go).
	times, rawMFs := sc.familyLists()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("bad field in group record")
		}
		b = b[n:]
		if num == groupFieldExpireAfter && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			g.Expiry = Expiry{Set: true, After: time.Duration(v)}
			continue
		}
		if typ != protowire.BytesType {
			return nil, fmt.Errorf("bad field in group record")
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case groupFieldLabel:
			name, value, ok := labelFields(v)
			if !ok {
				return nil, errors.New("bad grouping label")
			}
			// Names repeat across groups (job, instance): interned.
			labels = append(labels, Label{Name: *sc.internCache().str(name), Value: string(value)})
		case groupFieldFamily:
			ts, raw, err := decodeFamilyRecord(v)
			if err != nil {
				return nil, err
			}
			times = append(times, ts)
			rawMFs = append(rawMFs, raw)
		case groupFieldPushedByUser:
			g.LastPushBy.User = string(v)
		case groupFieldPushedByAddr:
			g.LastPushBy.RemoteAddr = string(v)
		default:
			return nil, fmt.Errorf("unknown field %d in group record", num)
		}
	}
	// Written sorted by name (appendLabels); sorted here only if the writer
	// did not, a name twice refused.
	if byName := func(a, b Label) int { return strings.Compare(a.Name, b.Name) }; !slices.IsSortedFunc(labels, byName) {
		slices.SortFunc(labels, byName)
	}
	for i := 1; i < len(labels); i++ {
		if labels[i].Name == labels[i-1].Name {
			return nil, fmt.Errorf("grouping label %q twice", labels[i].Name)
		}
	}
	g.Labels = GroupLabels{sorted: slices.Clip(labels)}
	sc.keepFamilyLists(times, rawMFs)
	if len(rawMFs) > 0 {
		// Every stored metric carries the grouping labels, and an empty
		// instance label unless the group has one: share them.
		gp := newGroupingPairs(g.Labels)
		stored, err := decodeStoredFamilies(rawMFs, times, familyDecoding{shared: gp.stored(), scratch: sc})
		if err != nil {
			return nil, fmt.Errorf("metric family: %w", err)
		}
		g.Families = NewFamilies(pointersTo(stored))
	}
	g.Key = g.Labels.key()
	return g, nil
}

// decodeFamilyRecord reads a family record: the family's time, and the raw
// metric family for decodeFamilies (a subslice of b).
func decodeFamilyRecord(b []byte) (int64, []byte, error) {
	var ts int64
	var raw []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == famFieldTime && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, nil, protowire.ParseError(n)
			}
			b = b[n:]
			ts = int64(v)
		case num == famFieldMF && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, nil, protowire.ParseError(n)
			}
			b = b[n:]
			raw = v
		default:
			return 0, nil, fmt.Errorf("unknown field %d in family record", num)
		}
	}
	if raw == nil {
		return 0, nil, errors.New("family record without metric family")
	}
	return ts, raw, nil
}

// appendSelector writes a selector as repeated matcher messages in field 1,
// each {1: name, 2: type, 3: value}.
func appendSelector(b []byte, sel Selector) []byte {
	for _, m := range sel {
		var mb []byte
		mb = protowire.AppendTag(mb, 1, protowire.BytesType)
		mb = protowire.AppendString(mb, m.Name)
		mb = protowire.AppendTag(mb, 2, protowire.VarintType)
		mb = protowire.AppendVarint(mb, uint64(m.Type))
		mb = protowire.AppendTag(mb, 3, protowire.BytesType)
		mb = protowire.AppendString(mb, m.Value)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, mb)
	}
	return b
}

// decodeSelector reads what appendSelector writes.
func decodeSelector(b []byte) (Selector, error) {
	var sel Selector
	err := eachRepeatedMessage(b, "selector", func(v []byte) error {
		m, err := decodeMatcher(v)
		if err != nil {
			return err
		}
		sel = append(sel, m)
		return nil
	})
	return sel, err
}

// eachRepeatedMessage calls fn with each value of a message that holds
// only a repeated message in field 1 (what names the message in errors).
func eachRepeatedMessage(b []byte, what string, fn func([]byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return fmt.Errorf("bad field in %s", what)
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// metaFields are the field numbers of a group's expiry, pusher's user and
// pusher's address in a command or a snapshot record.
type metaFields struct{ expireAfter, user, addr protowire.Number }

// appendGroupMeta appends what a group keeps beside its metrics, each field
// only when set, so that records without it stay as older builds wrote them.
func appendGroupMeta(b []byte, e Expiry, by PushedBy, f metaFields) []byte {
	if e.Set {
		b = protowire.AppendTag(b, f.expireAfter, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.After))
	}
	if by.User != "" {
		b = protowire.AppendTag(b, f.user, protowire.BytesType)
		b = protowire.AppendString(b, by.User)
	}
	if by.RemoteAddr != "" {
		b = protowire.AppendTag(b, f.addr, protowire.BytesType)
		b = protowire.AppendString(b, by.RemoteAddr)
	}
	return b
}

func decodeMatcher(b []byte) (Matcher, error) {
	var m Matcher
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 3) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return m, protowire.ParseError(n)
			}
			b = b[n:]
			if num == 1 {
				m.Name = string(v)
			} else {
				m.Value = string(v)
			}
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return m, protowire.ParseError(n)
			}
			b = b[n:]
			if v > 255 {
				return m, fmt.Errorf("match type %d", v)
			}
			m.Type = MatchType(v)
		default:
			return m, fmt.Errorf("unknown field %d in matcher", num)
		}
	}
	return m, nil
}

// eachField calls f with every field of a message: its number, wire type
// and, by type, its bytes (BytesType) or its value (VarintType,
// Fixed64Type). It reports false if the message does not parse, has a
// field of another wire type, or f returns false.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		default:
			return false
		}
		if n < 0 {
			return false
		}
		b = b[n:]
		if !f(num, typ, v, x) {
			return false
		}
	}
	return true
}
