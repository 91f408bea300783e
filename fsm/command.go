package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Op is the kind of change a Command makes.
type Op uint8

// The commands of the state machine.
const (
	// OpPut replaces all metric families of a group (HTTP PUT).
	OpPut Op = 1
	// OpPost replaces the same-named metric families of a group (HTTP POST).
	OpPost Op = 2
	// OpDelete removes a group (HTTP DELETE).
	OpDelete Op = 3
	// OpWipe removes every group (admin API wipe).
	OpWipe Op = 4
	// OpExpire removes the listed groups whose last push is older than
	// the command's cutoff (--push.expire-after, proposed by the leader).
	OpExpire Op = 5
	// OpImport fills an empty store with the groups of an upstream
	// Pushgateway persistence file (--persistence.file), once.
	OpImport Op = 6
	// OpRestore replaces the whole state with a snapshot (admin API
	// restore).
	OpRestore Op = 7
	// OpDeleteMatching removes every group that one of its selectors
	// matches (admin API delete by selector).
	OpDeleteMatching Op = 8
)

// CommandVersion is the version of the binary command encoding written by
// this build. Decode accepts this version only and fails loudly otherwise.
//
// New operations (OpExpire, OpImport, OpRestore) and their fields were added
// without a version change: a log without them is read exactly as before,
// and a build that predates them refuses such an entry loudly (unknown op,
// unknown field) instead of skipping it. Upgrade every node before using
// expiry, import or restore.
const CommandVersion = 1

// Command is one change of the state, as it travels through the raft log.
// Every time that matters to the state is inside the command: Apply never
// reads a clock.
type Command struct {
	// Op says what to do.
	Op Op
	// Labels is the grouping key as a label set, including "job". Empty
	// for OpWipe.
	Labels map[string]string
	// Families are the pushed metric families (OpPut and OpPost only).
	// Apply sanitizes them (grouping labels, instance label, label order).
	Families []*dto.MetricFamily
	// TimeUnixNano is when the accepting node received the request. It
	// becomes push_time_seconds or push_failure_time_seconds.
	TimeUnixNano int64
	// Unchecked skips the consistency check, like upstream's
	// --push.disable-consistency-check. Pushed timestamps are still
	// rejected.
	Unchecked bool

	// CutoffUnixNano (OpExpire): a listed group is removed only if its
	// last push (Group.LastPushUnixNano) is older than this. The leader
	// sets it to its clock minus --push.expire-after; Apply compares, it
	// never reads a clock.
	CutoffUnixNano int64
	// Expire (OpExpire) lists the grouping keys, as label sets, the
	// leader found expired.
	Expire []map[string]string
	// Import (OpImport) holds the imported groups with their families
	// and per-family times. Apply takes them only into an empty store
	// that never imported before.
	Import []*Group
	// Source (OpImport) describes where the import came from (file and
	// digest); it is kept in the import record.
	Source string
	// Snapshot (OpRestore) is a snapshot as written by Snapshot.WriteTo.
	// The accepting node validates it before proposing.
	Snapshot []byte

	// MaxGroups and MaxSeries (OpPut, OpPost) are the cluster-wide quotas
	// the push is held to (--push.max-groups, --push.max-total-series; 0:
	// none). The leader stamps them (see Stamp), so that every node judges
	// the push by the same numbers.
	MaxGroups, MaxSeries uint64

	// ExpireAfter (OpPut, OpPost) is the group's own expiry from the
	// push's X-Pushgateway-Expire-After header; unset, the group follows
	// --push.expire-after. A successful push stores it with the group.
	ExpireAfter Expiry
	// PushedBy (OpPut, OpPost) says who pushed; a successful push stores
	// it with the group.
	PushedBy PushedBy
	// Selectors (OpDeleteMatching) are OR-ed: a group any of them matches
	// is removed.
	Selectors []Selector
}

// Field numbers of the command message. The encoding is protobuf wire
// format written with protowire, so it stays compact and can grow new
// optional fields without breaking old logs.
const (
	cmdFieldVersion      = 1
	cmdFieldOp           = 2
	cmdFieldTime         = 3
	cmdFieldUnchecked    = 4
	cmdFieldLabel        = 5  // repeated io.prometheus.client.LabelPair
	cmdFieldFamily       = 6  // repeated io.prometheus.client.MetricFamily
	cmdFieldCutoff       = 7  // int64 (OpExpire)
	cmdFieldExpire       = 8  // repeated message {1: repeated LabelPair} (OpExpire)
	cmdFieldImport       = 9  // repeated group record as in snapshots (OpImport)
	cmdFieldSource       = 10 // string (OpImport)
	cmdFieldSnapshot     = 11 // bytes (OpRestore)
	cmdFieldMaxGroups    = 12 // uint64 (quota, stamped by the leader)
	cmdFieldMaxSeries    = 13 // uint64 (quota, stamped by the leader)
	cmdFieldExpireAfter  = 14 // int64 nanoseconds, present: set (OpPut, OpPost)
	cmdFieldPushedByUser = 15 // string (OpPut, OpPost)
	cmdFieldPushedByAddr = 16 // string (OpPut, OpPost)
	cmdFieldSelector     = 17 // repeated message {1: repeated matcher {1: name, 2: type, 3: value}} (OpDeleteMatching)
)

// Encode returns the binary form of the command that goes into the raft log.
// Labels are written in sorted order and families in the given order, so
// equal commands encode to equal bytes.
func (c *Command) Encode() ([]byte, error) {
	if _, ok := operations[c.Op]; !ok {
		return nil, fmt.Errorf("encode command: unknown op %d", c.Op)
	}
	if err := c.checkFields(); err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	b := make([]byte, 0, 64)
	b = protowire.AppendTag(b, cmdFieldVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, CommandVersion)
	b = protowire.AppendTag(b, cmdFieldOp, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(c.Op))
	b = protowire.AppendTag(b, cmdFieldTime, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(c.TimeUnixNano))
	if c.Unchecked {
		b = protowire.AppendTag(b, cmdFieldUnchecked, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	b = appendLabels(b, cmdFieldLabel, LabelsOf(c.Labels))
	opts := proto.MarshalOptions{Deterministic: true}
	for _, mf := range c.Families {
		var err error
		b = protowire.AppendTag(b, cmdFieldFamily, protowire.BytesType)
		size := opts.Size(mf)
		b = protowire.AppendVarint(b, uint64(size))
		if b, err = opts.MarshalAppend(b, mf); err != nil {
			return nil, fmt.Errorf("encode metric family %q: %w", mf.GetName(), err)
		}
	}
	if c.Op == OpExpire {
		b = protowire.AppendTag(b, cmdFieldCutoff, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(c.CutoffUnixNano))
	}
	for _, labels := range c.Expire {
		b = protowire.AppendTag(b, cmdFieldExpire, protowire.BytesType)
		b = protowire.AppendBytes(b, appendLabels(nil, 1, LabelsOf(labels)))
	}
	var rec []byte
	for _, g := range c.Import {
		var err error
		if rec, err = encodeGroup(rec[:0], g); err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, cmdFieldImport, protowire.BytesType)
		b = protowire.AppendBytes(b, rec)
	}
	if c.Source != "" {
		b = protowire.AppendTag(b, cmdFieldSource, protowire.BytesType)
		b = protowire.AppendString(b, c.Source)
	}
	if c.Op == OpRestore {
		b = protowire.AppendTag(b, cmdFieldSnapshot, protowire.BytesType)
		b = protowire.AppendBytes(b, c.Snapshot)
	}
	b = appendGroupMeta(b, c.ExpireAfter, c.PushedBy, metaFields{cmdFieldExpireAfter, cmdFieldPushedByUser, cmdFieldPushedByAddr})
	for _, sel := range c.Selectors {
		b = protowire.AppendTag(b, cmdFieldSelector, protowire.BytesType)
		b = protowire.AppendBytes(b, appendSelector(nil, sel))
	}
	return appendQuotas(b, c.MaxGroups, c.MaxSeries), nil
}

// appendQuotas writes the quota fields that are set.
func appendQuotas(b []byte, maxGroups, maxSeries uint64) []byte {
	if maxGroups > 0 {
		b = protowire.AppendTag(b, cmdFieldMaxGroups, protowire.VarintType)
		b = protowire.AppendVarint(b, maxGroups)
	}
	if maxSeries > 0 {
		b = protowire.AppendTag(b, cmdFieldMaxSeries, protowire.VarintType)
		b = protowire.AppendVarint(b, maxSeries)
	}
	return b
}

// Stamp is what the leader adds to every command it appends: its clock,
// and the quotas a push is held to.
type Stamp struct {
	TimeUnixNano         int64
	MaxGroups, MaxSeries uint64
}

// StampCommand returns the encoded command data with the stamp's time and
// quotas in place of the command's own: the fields are appended, and
// DecodeCommand keeps the last value of a repeated scalar field, so no
// other byte of the command changes. The leader stamps every command it
// appends, so that all times in the log come from one clock and every
// node judges a push by the same quotas (see cluster's applyAsLeader).
func StampCommand(data []byte, st Stamp) []byte {
	out := make([]byte, len(data), len(data)+3+3*binary.MaxVarintLen64)
	copy(out, data)
	out = protowire.AppendTag(out, cmdFieldTime, protowire.VarintType)
	out = protowire.AppendVarint(out, uint64(st.TimeUnixNano))
	// A zero quota (none) must override a quota the command carried.
	out = protowire.AppendTag(out, cmdFieldMaxGroups, protowire.VarintType)
	out = protowire.AppendVarint(out, st.MaxGroups)
	out = protowire.AppendTag(out, cmdFieldMaxSeries, protowire.VarintType)
	return protowire.AppendVarint(out, st.MaxSeries)
}

// ErrMalformedCommand is wrapped by every error DecodeCommand returns for
// bytes that are not a valid command.
var ErrMalformedCommand = errors.New("malformed command")

// bytesFields decodes the length-delimited fields of a command: what the
// field holds (for error messages) and how it is stored. v is only valid
// during the call.
var bytesFields = map[protowire.Number]struct {
	what string
	set  func(c *Command, v []byte) error
}{
	cmdFieldLabel: {"label", func(c *Command, v []byte) error {
		lp := &dto.LabelPair{}
		if err := proto.Unmarshal(v, lp); err != nil {
			return err
		}
		c.Labels[lp.GetName()] = lp.GetValue()
		return nil
	}},
	cmdFieldExpire: {"expired group", func(c *Command, v []byte) error {
		labels, err := decodeLabelSet(v)
		if err == nil {
			c.Expire = append(c.Expire, labels)
		}
		return err
	}},
	cmdFieldImport: {"imported group", func(c *Command, v []byte) error {
		g, err := decodeGroup(v, nil)
		if err == nil {
			c.Import = append(c.Import, g)
		}
		return err
	}},
	cmdFieldSource:       {"source", func(c *Command, v []byte) error { c.Source = string(v); return nil }},
	cmdFieldPushedByUser: {"pushed-by user", func(c *Command, v []byte) error { c.PushedBy.User = string(v); return nil }},
	cmdFieldPushedByAddr: {"pushed-by address", func(c *Command, v []byte) error { c.PushedBy.RemoteAddr = string(v); return nil }},
	cmdFieldSelector: {"selector", func(c *Command, v []byte) error {
		sel, err := decodeSelector(v)
		if err == nil {
			c.Selectors = append(c.Selectors, sel)
		}
		return err
	}},
	cmdFieldSnapshot: {"snapshot", func(c *Command, v []byte) error { c.Snapshot = append([]byte(nil), v...); return nil }},
}

// DecodeCommand parses the binary form written by Encode. Unknown versions,
// unknown operations and unknown fields are errors: a node must never
// silently skip a command it does not understand. It checks the encoding
// only; whether the command is well-formed is Validate's job.
func DecodeCommand(b []byte) (*Command, error) {
	c := &Command{Labels: map[string]string{}}
	var version uint64
	seenVersion := false
	var rawFamilies [][]byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: bad tag: %v", ErrMalformedCommand, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == cmdFieldVersion && typ == protowire.VarintType,
			num == cmdFieldOp && typ == protowire.VarintType,
			num == cmdFieldTime && typ == protowire.VarintType,
			num == cmdFieldUnchecked && typ == protowire.VarintType,
			num == cmdFieldCutoff && typ == protowire.VarintType,
			num == cmdFieldMaxGroups && typ == protowire.VarintType,
			num == cmdFieldMaxSeries && typ == protowire.VarintType,
			num == cmdFieldExpireAfter && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: field %d: %v", ErrMalformedCommand, num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case cmdFieldVersion:
				version, seenVersion = v, true
			case cmdFieldOp:
				if _, ok := operations[Op(v)]; !ok || v > 255 {
					return nil, fmt.Errorf("%w: unknown op %d", ErrMalformedCommand, v)
				}
				c.Op = Op(v)
			case cmdFieldTime:
				c.TimeUnixNano = int64(v)
			case cmdFieldUnchecked:
				c.Unchecked = v != 0
			case cmdFieldCutoff:
				c.CutoffUnixNano = int64(v)
			case cmdFieldMaxGroups:
				c.MaxGroups = v
			case cmdFieldMaxSeries:
				c.MaxSeries = v
			case cmdFieldExpireAfter:
				c.ExpireAfter = Expiry{Set: true, After: time.Duration(v)}
			}
		case num == cmdFieldFamily && typ == protowire.BytesType:
			// Decoded together after the loop, into shared slabs
			// (familydecode.go).
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: metric family: %v", ErrMalformedCommand, protowire.ParseError(n))
			}
			b = b[n:]
			rawFamilies = append(rawFamilies, v)
		case typ == protowire.BytesType && bytesFields[num].set != nil:
			f := bytesFields[num]
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: %s: %v", ErrMalformedCommand, f.what, protowire.ParseError(n))
			}
			b = b[n:]
			if err := f.set(c, v); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrMalformedCommand, f.what, err)
			}
		default:
			return nil, fmt.Errorf("%w: unknown field %d (wire type %d)", ErrMalformedCommand, num, typ)
		}
	}
	if len(rawFamilies) > 0 {
		// Sanitizing adds the grouping labels and an instance label.
		fams, err := decodeFamilies(rawFamilies, familyDecoding{spareLabels: len(c.Labels) + 1})
		if err != nil {
			return nil, fmt.Errorf("%w: metric family: %v", ErrMalformedCommand, err)
		}
		c.Families = fams
	}
	if !seenVersion {
		return nil, fmt.Errorf("%w: no version", ErrMalformedCommand)
	}
	if version != CommandVersion {
		return nil, fmt.Errorf("%w: unsupported version %d (this build understands %d)", ErrMalformedCommand, version, CommandVersion)
	}
	if c.Op == 0 {
		return nil, fmt.Errorf("%w: no op", ErrMalformedCommand)
	}
	return c, nil
}
