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
	var buf bytes.Buffer
	if _, err := a.s.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	// Walk the records to the one to damage, in the first batch.
	const bad = 500
	b := bytes.Clone(buf.Bytes())
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
