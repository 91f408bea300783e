package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// withMeta sets a push's own expiry and author.
func withMeta(c *Command, e Expiry, by PushedBy) *Command {
	c.ExpireAfter, c.PushedBy = e, by
	return c
}

// FuzzDecodeCommand feeds arbitrary bytes to the command decoder: it must
// return a command or ErrMalformedCommand, never panic, and a decoded
// command must survive an encode/decode round trip.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []*Command{
		{Op: OpWipe, TimeUnixNano: 1},
		{Op: OpDelete, Labels: map[string]string{"job": "j", "instance": ""}, TimeUnixNano: 2},
		pushCmd(f, OpPut, 3, "# TYPE a counter\na{x=\"1\"} 1\n", "job", "j"),
		pushCmd(f, OpPost, 4, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "job", "j", "instance", "i"),
		{Op: OpExpire, TimeUnixNano: 5, CutoffUnixNano: 4, Expire: []map[string]string{{"job": "j"}, {"job": "k", "instance": ""}}},
		{Op: OpImport, TimeUnixNano: 6, Source: "s", Import: []*Group{{Labels: LabelsOf(map[string]string{"job": "j"}), Families: Families{
			NewFamily(parseText(f, "a{job=\"j\"} 1\n")[0], 3)}}}},
		{Op: OpRestore, TimeUnixNano: 7, Snapshot: []byte("PGCSNAP\x01\x00\x00\x00\x00\x00\x00\x00")},
		{Op: OpDeleteMatching, TimeUnixNano: 8, Selectors: []Selector{
			{{Name: "job", Type: MatchEqual, Value: "j"}, {Name: "branch", Type: MatchRegexp, Value: "feature-.*"}},
			{{Name: "job", Type: MatchNotRegexp, Value: "(a|b"}}}},
		withMeta(pushCmd(f, OpPut, 9, "a 1\n", "job", "j"), Expiry{Set: true, After: 90e9}, PushedBy{User: "ci", RemoteAddr: "127.0.0.1:1"}),
	} {
		b, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01, 0x10, 0x09})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedCommand) {
				t.Fatalf("error not marked malformed: %v", err)
			}
			return
		}
		if err := Validate(c); err != nil {
			// Apply is total: the same verdict, and nothing changes.
			s := newTestFSM()
			if res := s.Apply(1, data); !errors.Is(res.Err, ErrInvalidCommand) || s.Len() != 0 {
				t.Fatalf("invalid command (%v) applied: %v, %d groups", err, res.Err, s.Len())
			}
			return
		}
		b, err := c.Encode()
		if err != nil {
			t.Fatalf("decoded command does not encode: %v", err)
		}
		again, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		b2, _ := again.Encode()
		if !bytes.Equal(b, b2) {
			t.Fatal("encoding is not stable")
		}
		// Applying any decodable command must not panic and must keep
		// the indexes consistent with a fresh rebuild (via snapshot).
		s := newTestFSM()
		s.ApplyCommand(1, again)
		var snap bytes.Buffer
		if _, err := s.Snapshot().WriteTo(&snap); err != nil {
			t.Fatal(err)
		}
		r := newTestFSM()
		if err := r.Restore(&snap); err != nil {
			t.Fatalf("snapshot of a fuzzed state does not restore: %v", err)
		}
		// Whatever was applied can be exposed, and the exposition parses.
		if s.Consistent() {
			var text bytes.Buffer
			enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain).WithEscapingScheme(model.NoEscaping))
			for _, mf := range s.Families() {
				if err := enc.Encode(mf); err != nil {
					t.Fatalf("applied state does not encode: %v", err)
				}
			}
			p := expfmt.NewTextParser(model.UTF8Validation)
			if _, err := p.TextToMetricFamilies(&text); err != nil {
				t.Fatalf("exposition of the applied state does not parse: %v\n%s", err, text.String())
			}
		}
	})
}

// FuzzRestore feeds arbitrary bytes to Restore: it must fail with
// ErrCorruptSnapshot and leave the state alone, or succeed; never panic.
func FuzzRestore(f *testing.F) {
	s := newTestFSM()
	a := &applier{t: f, s: s}
	a.mustOK(pushCmd(f, OpPut, 1, "a 1\nb{x=\"y\"} 2\n", "job", "j1"))
	a.mustOK(pushCmd(f, OpPut, 2, "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n", "job", "j2", "instance", "i"))
	var good bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&good); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:len(good.Bytes())/2])
	f.Add([]byte("PGCSNAP\x01\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newTestFSM()
		(&applier{t: t, s: s}).mustOK(pushCmd(t, OpPut, 5, "keep 1\n", "job", "keep"))
		before := render(t, s)
		if err := s.Restore(bytes.NewReader(data)); err != nil {
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			if render(t, s) != before {
				t.Fatal("a failed restore changed the state")
			}
			return
		}
		_ = render(t, s)
	})
}
