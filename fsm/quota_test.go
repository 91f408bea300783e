package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// quotaPush is a push held to the given quotas, as the leader stamps it.
func quotaPush(t *testing.T, job, text string, maxGroups, maxSeries uint64) *Command {
	c := pushCmd(t, OpPut, 1, text, "job", job)
	c.MaxGroups, c.MaxSeries = maxGroups, maxSeries
	return c
}

func TestQuotasRefuseGrowthAndNothingElse(t *testing.T) {
	s := newTestFSM()
	a := &applier{t: t, s: s}
	// Each group holds its metrics plus push_time_seconds and
	// push_failure_time_seconds: "a 1" makes 3 series.
	a.mustOK(quotaPush(t, "g1", "a 1\n", 2, 7))
	a.mustOK(quotaPush(t, "g2", "a 1\n", 2, 7))
	if s.Len() != 2 || s.Series() != 6 {
		t.Fatalf("%d groups, %d series", s.Len(), s.Series())
	}
	before := render(t, s)
	for _, tc := range []struct {
		what, want string
		c          *Command
	}{
		{"a third group", "--push.max-groups=2", quotaPush(t, "g3", "a 1\n", 2, 0)},
		{"two more series", "--push.max-total-series=7", quotaPush(t, "g1", "a 1\nb 1\nc 1\n", 0, 7)},
		{"a failure beyond a quota", "", quotaPush(t, "g3", "a 1 123\n", 2, 0)},
	} {
		res := s.ApplyCommand(9, tc.c)
		var qe *QuotaError
		if tc.want == "" {
			if res.Err != ErrTimestamp {
				t.Fatalf("%s: %v", tc.what, res.Err)
			}
		} else if !errors.As(res.Err, &qe) || !strings.Contains(qe.Msg, tc.want) {
			t.Fatalf("%s: %v, want a quota refusal naming %s", tc.what, res.Err, tc.want)
		}
		if render(t, s) != before {
			t.Fatalf("%s changed the state", tc.what)
		}
	}
	// Replacing a group by one of the same size, or deleting one, passes.
	a.mustOK(quotaPush(t, "g1", "b 2\n", 2, 6))
	a.mustOK(&Command{Op: OpDelete, Labels: map[string]string{"job": "g2"}, TimeUnixNano: 2})
	a.mustOK(quotaPush(t, "g3", "a 1\n", 2, 6))
	// No quota, no limit; the count survives a snapshot.
	a.mustOK(quotaPush(t, "g4", "a 1\nb 1\n", 0, 0))
	var snap bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&snap); err != nil {
		t.Fatal(err)
	}
	r := newTestFSM()
	if err := r.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	if r.Series() != s.Series() || s.Series() != 10 {
		t.Fatalf("series after restore: %d, before: %d", r.Series(), s.Series())
	}
}

func TestStampOverridesTimeAndQuotas(t *testing.T) {
	c := quotaPush(t, "j", "a 1\n", 5, 5)
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeCommand(StampCommand(b, Stamp{TimeUnixNano: 42, MaxGroups: 0, MaxSeries: 9}))
	if err != nil {
		t.Fatal(err)
	}
	if d.TimeUnixNano != 42 || d.MaxGroups != 0 || d.MaxSeries != 9 || len(d.Families) != 1 {
		t.Fatalf("stamped command: %+v", d)
	}
}
