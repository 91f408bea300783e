package fsm

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestCommandRoundTrip(t *testing.T) {
	c := pushCmd(t, OpPost, t2, "# TYPE a counter\na{x=\"1\"} 1\nb 2\n", "job", "j", "instance", "i", "zone", "")
	c.Unchecked = true
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Op != c.Op || d.TimeUnixNano != c.TimeUnixNano || !d.Unchecked || len(d.Labels) != 3 || d.Labels["zone"] != "" || len(d.Families) != 2 {
		t.Fatalf("decoded %+v", d)
	}
	for i := range c.Families {
		if !proto.Equal(c.Families[i], d.Families[i]) {
			t.Fatalf("family %d differs", i)
		}
	}
	again, _ := d.Encode()
	if string(again) != string(b) {
		t.Fatal("encoding is not deterministic")
	}
	w, _ := (&Command{Op: OpWipe, TimeUnixNano: 1}).Encode()
	if d, err := DecodeCommand(w); err != nil || d.Op != OpWipe || len(d.Labels) != 0 {
		t.Fatalf("wipe: %+v %v", d, err)
	}
}

func TestDecodeCommandFailsLoudly(t *testing.T) {
	good, _ := (&Command{Op: OpDelete, Labels: map[string]string{"job": "j"}, TimeUnixNano: 5}).Encode()
	withField := func(num protowire.Number, v uint64) []byte {
		b := append([]byte(nil), good...)
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, v)
	}
	noVersion := protowire.AppendTag(nil, cmdFieldOp, protowire.VarintType)
	noVersion = protowire.AppendVarint(noVersion, uint64(OpWipe))
	for name, b := range map[string][]byte{
		"unknown op":     withField(cmdFieldOp, 99),
		"future version": withField(cmdFieldVersion, CommandVersion+1),
		"unknown field":  withField(42, 1),
		"no version":     noVersion,
		"truncated":      good[:len(good)-2],
		"garbage":        {0xff, 0xff, 0xff},
		"bad family":     append(protowire.AppendTag(append([]byte(nil), good...), cmdFieldFamily, protowire.BytesType), 3, 0xff, 0xff, 0xff),
		"empty":          {},
		"zero op":        withField(cmdFieldOp, 0),
	} {
		if _, err := DecodeCommand(b); !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("%s: want ErrMalformedCommand, got %v", name, err)
		}
	}
	if _, err := (&Command{Op: 9}).Encode(); err == nil {
		t.Error("encoding an unknown op must fail")
	}
}
