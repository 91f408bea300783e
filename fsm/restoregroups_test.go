package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A snapshot's records are read while the batch before is decoded: a bad
// record is reported as the first error even when the stream also breaks
// further on, read before the bad record's batch was decoded, and nothing
// changes.
func TestRestoreReportsTheFirstBadRecordWhileReadingAhead(t *testing.T) {
	const groups = 3 * restoreBatch
	a := &applier{t: t, s: newTestFSM()}
	for g := range groups {
		a.mustOK(pushCmd(t, OpPut, int64(g+1)*1e9, fmt.Sprintf("m{i=\"%d\"} 1\n", g), "job", "j", "instance", fmt.Sprint(g)))
	}
	// Walk the records to the one to damage, in the first batch.
	const bad = 500
	b := snapshotBytes(t, a.s.Snapshot())
	off := len(snapshotMagic) + 1
	for n := 1; ; n++ {
		size, w := binary.Uvarint(b[off:])
		if w <= 0 || size == 0 {
			t.Fatalf("record %d not found", bad)
		}
		if n == bad {
			b[off+w] = 0xff // no field has this tag
			break
		}
		off += w + int(size)
	}
	// And cut the stream in the second batch, read while the first is
	// decoded.
	b = b[:len(b)/2]

	s := newTestFSM()
	(&applier{t: t, s: s}).mustOK(pushCmd(t, OpPut, t1, "keep 1\n", "job", "keep"))
	err := s.Restore(bytes.NewReader(b))
	if !errors.Is(err, ErrCorruptSnapshot) || !strings.Contains(err.Error(), fmt.Sprintf("group record %d:", bad)) {
		t.Fatalf("got %v, want the corrupt group record %d", err, bad)
	}
	if s.Len() != 1 || s.Group(map[string]string{"job": "keep"}) == nil {
		t.Fatal("a failed restore changed the state")
	}
}

// TestRestoreReusesItsListsAcrossRecords restores groups whose records
// differ in everything a decoding goroutine's reused lists hold (decodeScratch):
// the number of grouping labels and of families, families decoded fast
// and by proto (histograms, summaries) in one group, families with and
// without labels and help. Each group comes back as it was stored.
func TestRestoreReusesItsListsAcrossRecords(t *testing.T) {
	a := &applier{t: t, s: newTestFSM()}
	const groups = restoreBatch + 300
	for g := range groups {
		var body strings.Builder
		for f := range 1 + g%17 {
			switch f % 4 {
			case 0:
				fmt.Fprintf(&body, "# HELP f%d help %d\n# TYPE f%d gauge\nf%d{x=\"%d\",y=\"%d\"} %d\n", f, g%3, f, f, g, f, g)
			case 1:
				fmt.Fprintf(&body, "# TYPE h%d histogram\nh%d_bucket{le=\"1\"} %d\nh%d_bucket{le=\"+Inf\"} %d\nh%d_sum 1\nh%d_count %d\n", f, f, g, f, g+1, f, f, g+1)
			case 2:
				fmt.Fprintf(&body, "c%d_total %d\n", f, g)
			default:
				fmt.Fprintf(&body, "# TYPE s%d summary\ns%d{quantile=\"0.5\"} 1\ns%d_sum 2\ns%d_count 3\n", f, f, f, f)
			}
		}
		labels := []string{"job", fmt.Sprint("j", g%5), "instance", fmt.Sprint(g)}
		for l := range g % 4 {
			labels = append(labels, fmt.Sprint("l", l), fmt.Sprint(g*l))
		}
		a.mustOK(pushCmd(t, OpPut, int64(g+1)*1e9, body.String(), labels...))
	}
	s := clone(t, a.s)
	if got, want := render(t, s), render(t, a.s); got != want {
		t.Fatal("the restored store exposes something else")
	}
	checkSameGroups(t, s, a.s)
}
