package fsm

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
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
)

// String returns the name of the operation.
func (o Op) String() string {
	switch o {
	case OpPut:
		return "PUT"
	case OpPost:
		return "POST"
	case OpDelete:
		return "DELETE"
	case OpWipe:
		return "WIPE"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// CommandVersion is the version of the binary command encoding written by
// this build. Decode accepts this version only and fails loudly otherwise.
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
}

// Field numbers of the command message. The encoding is protobuf wire
// format written with protowire, so it stays compact and can grow new
// optional fields without breaking old logs.
const (
	cmdFieldVersion   = 1
	cmdFieldOp        = 2
	cmdFieldTime      = 3
	cmdFieldUnchecked = 4
	cmdFieldLabel     = 5 // repeated io.prometheus.client.LabelPair
	cmdFieldFamily    = 6 // repeated io.prometheus.client.MetricFamily
)

// Encode returns the binary form of the command that goes into the raft log.
// Labels are written in sorted order and families in the given order, so
// equal commands encode to equal bytes.
func (c *Command) Encode() ([]byte, error) {
	if c.Op < OpPut || c.Op > OpWipe {
		return nil, fmt.Errorf("encode command: unknown op %d", c.Op)
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
	b = appendLabels(b, cmdFieldLabel, c.Labels)
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
	return b, nil
}

// appendLabels writes a label map as repeated LabelPair messages in sorted
// order of names.
func appendLabels(b []byte, field protowire.Number, labels map[string]string) []byte {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var lp []byte
		lp = protowire.AppendTag(lp, 1, protowire.BytesType)
		lp = protowire.AppendString(lp, n)
		lp = protowire.AppendTag(lp, 2, protowire.BytesType)
		lp = protowire.AppendString(lp, labels[n])
		b = protowire.AppendTag(b, field, protowire.BytesType)
		b = protowire.AppendBytes(b, lp)
	}
	return b
}

// ErrMalformedCommand is wrapped by every error DecodeCommand returns for
// bytes that are not a valid command.
var ErrMalformedCommand = errors.New("malformed command")

// DecodeCommand parses the binary form written by Encode. Unknown versions,
// unknown operations and unknown fields are errors: a node must never
// silently skip a command it does not understand.
func DecodeCommand(b []byte) (*Command, error) {
	c := &Command{Labels: map[string]string{}}
	var version uint64
	seenVersion := false
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
			num == cmdFieldUnchecked && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: field %d: %v", ErrMalformedCommand, num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case cmdFieldVersion:
				version, seenVersion = v, true
			case cmdFieldOp:
				if v < uint64(OpPut) || v > uint64(OpWipe) {
					return nil, fmt.Errorf("%w: unknown op %d", ErrMalformedCommand, v)
				}
				c.Op = Op(v)
			case cmdFieldTime:
				c.TimeUnixNano = int64(v)
			case cmdFieldUnchecked:
				c.Unchecked = v != 0
			}
		case num == cmdFieldLabel && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: label: %v", ErrMalformedCommand, protowire.ParseError(n))
			}
			b = b[n:]
			lp := &dto.LabelPair{}
			if err := proto.Unmarshal(v, lp); err != nil {
				return nil, fmt.Errorf("%w: label: %v", ErrMalformedCommand, err)
			}
			c.Labels[lp.GetName()] = lp.GetValue()
		case num == cmdFieldFamily && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: metric family: %v", ErrMalformedCommand, protowire.ParseError(n))
			}
			b = b[n:]
			mf := &dto.MetricFamily{}
			if err := proto.Unmarshal(v, mf); err != nil {
				return nil, fmt.Errorf("%w: metric family: %v", ErrMalformedCommand, err)
			}
			c.Families = append(c.Families, mf)
		default:
			return nil, fmt.Errorf("%w: unknown field %d (wire type %d)", ErrMalformedCommand, num, typ)
		}
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
	if c.Op != OpWipe {
		if c.Labels["job"] == "" {
			return nil, fmt.Errorf("%w: %s without a job label", ErrMalformedCommand, c.Op)
		}
		for name := range c.Labels {
			if !model.UTF8Validation.IsValidLabelName(name) || strings.HasPrefix(name, model.ReservedLabelPrefix) {
				return nil, fmt.Errorf("%w: invalid grouping label name %q", ErrMalformedCommand, name)
			}
		}
	}
	return c, nil
}
