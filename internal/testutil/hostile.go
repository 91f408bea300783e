package testutil

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// RawSnapshot writes a snapshot in the version 1 format of fsm (see
// fsm/snapshot.go) byte by byte, with a valid checksum, for one group with
// the given grouping labels and families, whatever they hold. The tests of
// the poison-proof guarantees restore it: fsm's own writer only writes
// states that passed its validator.
func RawSnapshot(grouping map[string]string, families ...*dto.MetricFamily) []byte {
	var group []byte
	names := make([]string, 0, len(grouping))
	for n := range grouping {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		lp, _ := proto.Marshal(&dto.LabelPair{Name: proto.String(n), Value: proto.String(grouping[n])})
		group = protowire.AppendTag(group, 1, protowire.BytesType)
		group = protowire.AppendBytes(group, lp)
	}
	for _, mf := range families {
		b, _ := proto.Marshal(mf)
		var rec []byte
		rec = protowire.AppendTag(rec, 1, protowire.VarintType)
		rec = protowire.AppendVarint(rec, 1)
		rec = protowire.AppendTag(rec, 2, protowire.BytesType)
		rec = protowire.AppendBytes(rec, b)
		group = protowire.AppendTag(group, 2, protowire.BytesType)
		group = protowire.AppendBytes(group, rec)
	}
	var out bytes.Buffer
	out.WriteString("PGCSNAP\x01")
	out.Write(protowire.AppendVarint(nil, uint64(len(group))))
	out.Write(group)
	out.Write(protowire.AppendVarint(nil, 0)) // end of groups
	out.Write(protowire.AppendVarint(nil, 1)) // group count
	out.Write(protowire.AppendVarint(nil, 1)) // applied index
	return binary.BigEndian.AppendUint32(out.Bytes(), crc32.ChecksumIEEE(out.Bytes()))
}
