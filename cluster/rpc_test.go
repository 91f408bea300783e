package cluster

import (
	"encoding/binary"
	"testing"
)

func TestStatusReplyRoundTripsAndReadsOlderReplies(t *testing.T) {
	want := statusReply{commitIndex: 7, appliedIndex: 6, lastIndex: 8, term: 3, wallUnixNano: 1e18, storageLow: true, removed: true}
	got, err := decodeStatusReply(want.encode())
	if err != nil || got != want {
		t.Fatalf("round trip: got %+v, %v; want %+v", got, err, want)
	}
	// A build before the clock and the flags sent four values; one before
	// the removal flag sent six. Both decode, the missing values zero.
	var older []byte
	for _, v := range []uint64{7, 6, 8, 3} {
		older = binary.AppendUvarint(older, v)
	}
	if got, err := decodeStatusReply(older); err != nil || got != (statusReply{commitIndex: 7, appliedIndex: 6, lastIndex: 8, term: 3}) {
		t.Fatalf("four values: got %+v, %v", got, err)
	}
	older = binary.AppendUvarint(binary.AppendUvarint(older, 5), 1)
	if got, err := decodeStatusReply(older); err != nil || got.removed || !got.storageLow || got.wallUnixNano != 5 {
		t.Fatalf("six values: got %+v, %v", got, err)
	}
	if _, err := decodeStatusReply(older[:2]); err == nil {
		t.Fatal("a truncated reply must be refused")
	}
}
