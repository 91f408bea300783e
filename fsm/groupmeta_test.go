package fsm

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestPushKeepsItsExpiryAndAuthorWithTheGroup(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	by := PushedBy{User: "ci", RemoteAddr: "192.0.2.7:4711"}
	c := pushCmd(t, OpPut, t1, "a 1\n", "job", "j")
	c.ExpireAfter, c.PushedBy = Expiry{Set: true, After: 90 * time.Second}, by
	a.mustOK(c)
	g := a.s.Groups()[0]
	if g.Expiry != c.ExpireAfter || g.LastPushBy != by {
		t.Fatalf("stored expiry %+v, pushed by %+v", g.Expiry, g.LastPushBy)
	}
	if at, ok := g.ExpiresAtUnixNano(); !ok || at != t1+int64(90*time.Second) {
		t.Fatalf("expires at %d %v", at, ok)
	}
	// A rejected push changes neither.
	bad := pushCmd(t, OpPut, t2, "a 1 1000\n", "job", "j")
	bad.PushedBy = PushedBy{User: "mallory"}
	if r := a.apply(bad); r.Err == nil {
		t.Fatal("inconsistent push accepted")
	}
	if g := a.s.Groups()[0]; g.Expiry != c.ExpireAfter || g.LastPushBy != by {
		t.Fatalf("rejected push changed expiry %+v or author %+v", g.Expiry, g.LastPushBy)
	}
	// A push without the header goes back to --push.expire-after.
	a.mustOK(pushCmd(t, OpPost, t2, "b 1\n", "job", "j"))
	if g := a.s.Groups()[0]; g.Expiry.Set || !g.LastPushBy.IsZero() {
		t.Fatalf("push without header or author kept %+v %+v", g.Expiry, g.LastPushBy)
	}
}

func TestGroupMetaSurvivesEncodingAndSnapshots(t *testing.T) {
	c := pushCmd(t, OpPost, t1, "a 1\n", "job", "j")
	c.ExpireAfter = Expiry{Set: true} // never
	c.PushedBy = PushedBy{User: "ops", RemoteAddr: "[::1]:1"}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.ExpireAfter != c.ExpireAfter || d.PushedBy != c.PushedBy {
		t.Fatalf("decoded %+v %+v", d.ExpireAfter, d.PushedBy)
	}
	a := &applier{t: t, s: newTestFSM()}
	a.mustOK(c)
	a.mustOK(pushCmd(t, OpPut, t1, "a 1\n", "job", "plain"))
	restored := clone(t, a.s)
	for i, g := range a.s.Groups() {
		rg := restored.Groups()[i]
		if rg.Expiry != g.Expiry || rg.LastPushBy != g.LastPushBy {
			t.Fatalf("group %v restored with %+v %+v, want %+v %+v", g.Labels, rg.Expiry, rg.LastPushBy, g.Expiry, g.LastPushBy)
		}
	}
	// A state without them is written exactly as before (older builds
	// read it): the plain group's record has no new field.
	plain := &Group{Labels: LabelsOf(map[string]string{"job": "p"}), Families: Families{}}
	rec, err := encodeGroup(nil, plain)
	if want := appendLabels(nil, groupFieldLabel, plain.Labels); err != nil || !bytes.Equal(rec, want) {
		t.Fatalf("plain group record %x (%v), want %x", rec, err, want)
	}
}

func TestBadExpiryOrAuthorIsRefused(t *testing.T) {
	for name, c := range map[string]*Command{
		"negative":        {ExpireAfter: Expiry{Set: true, After: -time.Second}},
		"beyond 100y":     {ExpireAfter: Expiry{Set: true, After: MaxExpireAfter + 1}},
		"unset with time": {ExpireAfter: Expiry{After: time.Second}},
		"long user":       {PushedBy: PushedBy{User: strings.Repeat("u", maxPushedByBytes+1)}},
		"bad utf8 addr":   {PushedBy: PushedBy{RemoteAddr: "\xff"}},
	} {
		c.Op, c.Labels, c.Families = OpPut, map[string]string{"job": "j"}, parseText(t, "a 1\n")
		if err := Validate(c); err == nil {
			t.Errorf("%s: valid", name)
		}
		a := &applier{t: t, s: newTestFSM()}
		if c.ExpireAfter.Set || c.ExpireAfter.After == 0 { // encodable
			if r := a.apply(c); r.Err == nil || a.s.Len() != 0 {
				t.Errorf("%s: applied (%v, %d groups)", name, r.Err, a.s.Len())
			}
		}
	}
}

func TestGroupsExpireByTheirOwnExpiryOrTheFlag(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	own := func(job string, d time.Duration) {
		c := pushCmd(t, OpPut, t1, "a 1\n", "job", job)
		c.ExpireAfter = Expiry{Set: true, After: d}
		a.mustOK(c)
	}
	own("short", time.Second)
	own("long", time.Hour)
	own("never", 0)
	a.mustOK(pushCmd(t, OpPut, t1, "a 1\n", "job", "flag"))
	jobs := func(l []map[string]string) string {
		var s []string
		for _, g := range l {
			s = append(s, g["job"])
		}
		return strings.Join(s, ",")
	}
	now := t1 + int64(2*time.Second)
	// Without the flag (cutoff 0) only the short one is due.
	if got := jobs(a.s.ExpiryCandidates(now, 0, 0)); got != "short" {
		t.Fatalf("candidates without the flag: %s", got)
	}
	// With a cutoff past every push, the flag takes the group without its
	// own expiry too, but never one that said never or a longer time.
	cands := a.s.ExpiryCandidates(now, now, 0)
	if got := jobs(cands); got != "flag,short" {
		t.Fatalf("candidates with the flag: %s", got)
	}
	all := append(cands, map[string]string{"job": "long"}, map[string]string{"job": "never"})
	a.mustOK(&Command{Op: OpExpire, TimeUnixNano: now, CutoffUnixNano: now, Expire: all})
	var left []string
	for _, g := range a.s.Groups() {
		left = append(left, g.Labels.Get("job"))
	}
	if strings.Join(left, ",") != "long,never" {
		t.Fatalf("left after expiry: %v", left)
	}
}

func TestCommandsSayWhichFeaturesTheyNeed(t *testing.T) {
	plain := pushCmd(t, OpPut, t1, "a 1\n", "job", "j")
	if plain.Needs() != 0 {
		t.Fatalf("plain push needs %v", plain.Needs())
	}
	withBy := pushCmd(t, OpPut, t1, "a 1\n", "job", "j")
	withBy.PushedBy.RemoteAddr = "x"
	del := &Command{Op: OpDeleteMatching, Selectors: []Selector{{{Name: "job", Value: "j"}}}}
	if withBy.Needs() != FeatureGroupMeta || del.Needs() != FeatureDeleteMatching {
		t.Fatalf("needs %v and %v", withBy.Needs(), del.Needs())
	}
	// A restore needs the feature when a group in its snapshot keeps a
	// pusher or an expiry (older builds refuse such records), not otherwise.
	snapshotOf := func(cmds ...*Command) []byte {
		a := &applier{t: t, s: newTestFSM()}
		for _, c := range cmds {
			a.mustOK(c)
		}
		return snapshotBytes(t, a.s.Snapshot())
	}
	if n := (&Command{Op: OpRestore, Snapshot: snapshotOf(plain)}).Needs(); n != 0 {
		t.Fatalf("restore of plain groups needs %v", n)
	}
	if n := (&Command{Op: OpRestore, Snapshot: snapshotOf(plain, withBy)}).Needs(); n != FeatureGroupMeta {
		t.Fatalf("restore of a group with its pusher needs %v", n)
	}
	if s := (FeatureGroupMeta | FeatureDeleteMatching).String(); s != "per-group expiry and who pushed, delete by selector" {
		t.Fatalf("features named %q", s)
	}
}

func TestExpiryDeadlineSaturates(t *testing.T) {
	if got := AddSaturating(math.MaxInt64-5, time.Hour); got != math.MaxInt64 {
		t.Fatalf("near the end: %d", got)
	}
	if got := AddSaturating(math.MinInt64+5, -time.Hour); got != math.MinInt64 {
		t.Fatalf("near the start: %d", got)
	}
	if got := AddSaturating(10, 5); got != 15 {
		t.Fatalf("plain sum: %d", got)
	}
	g := &Group{Families: Families{NewFamily(parseText(t, "a 1\n")[0], math.MaxInt64-1)}, Expiry: Expiry{Set: true, After: time.Hour}}
	if g.expired(math.MaxInt64-1, 0) {
		t.Fatal("a group pushed at the end of time expired at once")
	}
}
