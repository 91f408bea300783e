package fsm

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// parseText parses exposition text into families, sorted by name.
func parseText(t testing.TB, text string) []*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	out := make([]*dto.MetricFamily, 0, len(m))
	for _, n := range sortedKeys(m) {
		out = append(out, m[n])
	}
	return out
}

func sortedKeys(m map[string]*dto.MetricFamily) []string {
	labels := map[string]string{}
	for k := range m {
		labels[k] = ""
	}
	return sortedNames(labels)
}

// pushCmd builds a push command from exposition text.
func pushCmd(t testing.TB, op Op, ts int64, text string, labels ...string) *Command {
	t.Helper()
	l := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	return &Command{Op: op, Labels: l, Families: parseText(t, text), TimeUnixNano: ts}
}

// applier feeds commands through the encoded form, as raft does.
type applier struct {
	t     testing.TB
	s     *FSM
	index uint64
}

func (a *applier) apply(c *Command) *Result {
	a.t.Helper()
	b, err := c.Encode()
	if err != nil {
		a.t.Fatalf("encode: %v", err)
	}
	return a.applyEncoded(b)
}

// applyEncoded applies an encoded command at the next log index.
func (a *applier) applyEncoded(enc []byte) *Result {
	a.index++
	return a.s.Apply(a.index, enc)
}

// mustApplyEncoded is applyEncoded, failing on a rejection.
func (a *applier) mustApplyEncoded(enc []byte) {
	a.t.Helper()
	if r := a.applyEncoded(enc); r.Err != nil {
		a.t.Fatal(r.Err)
	}
}

// exposeTwelve builds the exposition of a filled benchmark store: ten
// gauge families and the two timestamp families.
func exposeTwelve(tb testing.TB, s *FSM) {
	tb.Helper()
	if len(s.Families()) != 12 {
		tb.Fatal("unexpected family count")
	}
}

func (a *applier) mustOK(c *Command) {
	a.t.Helper()
	if r := a.apply(c); r.Err != nil {
		a.t.Fatalf("%s %v: unexpected rejection: %v", c.Op, c.Labels, r.Err)
	}
}

func (a *applier) mustFail(c *Command, wantSubstr string) {
	a.t.Helper()
	r := a.apply(c)
	if r.Err == nil {
		a.t.Fatalf("%s %v: accepted, want error containing %q", c.Op, c.Labels, wantSubstr)
	}
	if !strings.Contains(r.Err.Error(), wantSubstr) {
		a.t.Fatalf("%s %v: error %q does not contain %q", c.Op, c.Labels, r.Err, wantSubstr)
	}
}

// render returns the text exposition of the pushed families.
func render(t testing.TB, s *FSM) string {
	t.Helper()
	return renderFamilies(t, s.Families())
}

// renderFamilies encodes families in the text format.
func renderFamilies(t testing.TB, fams []*dto.MetricFamily) string {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range fams {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	return buf.String()
}

func newTestFSM() *FSM {
	return New(map[string]ReservedFamily{
		"go_goroutines":          {Type: dto.MetricType_GAUGE, Help: "Number of goroutines that currently exist."},
		"go_gc_duration_seconds": {Type: dto.MetricType_SUMMARY, Help: "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles."},
	})
}

// checkSameGroups fails t unless got holds the groups of want: the same
// keys and grouping labels, and families of the same push times and
// messages.
func checkSameGroups(t *testing.T, got, want *FSM) {
	t.Helper()
	gs, ws := got.Groups(), want.Groups()
	if len(gs) != len(ws) {
		t.Fatalf("%d groups, want %d", len(gs), len(ws))
	}
	for i, w := range ws {
		g := gs[i]
		if g.Key != w.Key || !maps.Equal(maps.Collect(g.Labels.All()), maps.Collect(w.Labels.All())) || len(g.Families) != len(w.Families) {
			t.Fatalf("group %v comes back as %v with %d families (want %d)", w.Labels, g.Labels, len(g.Families), len(w.Families))
		}
		for _, f := range w.Families {
			if gf := g.Families.Get(f.Name()); gf.TimeUnixNano != f.TimeUnixNano || !proto.Equal(gf.MF(), f.MF()) {
				t.Fatalf("group %v: family %s comes back as\n%v\nwant\n%v", w.Labels, f.Name(), gf.MF(), f.MF())
			}
		}
	}
}
