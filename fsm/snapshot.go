package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
)

// Snapshot format, version 1:
//
//	magic "PGCSNAP" | version byte
//	repeated: uvarint length (> 0) | Group message
//	uvarint 0 | uvarint group count | uvarint applied index | CRC-32 (IEEE, big endian) of all preceding bytes
//
// A Group message is protobuf wire format: field 1 repeated LabelPair (the
// grouping labels), field 2 repeated StoredFamily {1: int64 time_unix_nano,
// 2: MetricFamily}. The trailer makes truncation and corruption detectable.
//
// Version 2 is version 1 with the import record (see ImportRecord) after
// the applied index: uvarint length | ImportRecord message {1: int64
// time_unix_nano, 2: uint64 groups, 3: string source}. It is written only
// when the state holds an import record, so that a state that never
// imported stays readable by builds that know version 1 only.
const (
	snapshotMagic     = "PGCSNAP"
	snapshotVersion   = 1
	snapshotVersionV2 = 2

	importFieldTime   = 1
	importFieldGroups = 2
	importFieldSource = 3

	groupFieldLabel  = 1
	groupFieldFamily = 2
	// The group's own expiry and who pushed it (FeatureGroupMeta): only
	// written when set, so a state without them is read by older builds.
	groupFieldExpireAfter  = 3 // int64 nanoseconds, present: set
	groupFieldPushedByUser = 4
	groupFieldPushedByAddr = 5
	famFieldTime           = 1
	famFieldMF             = 2
)

// ErrCorruptSnapshot is wrapped by every error Restore returns for a
// snapshot that is truncated, corrupted or of an unknown version.
var ErrCorruptSnapshot = errors.New("corrupt snapshot")

// Snapshot is an immutable view of the state at one log index. It can be
// written while the FSM goes on applying commands.
type Snapshot struct {
	groups   []*Group // in key order once sorted has run
	sorted   sync.Once
	applied  uint64
	imported *ImportRecord
}

// Snapshot captures the current state. It only copies group pointers,
// under the read lock. Raft calls it on the goroutine that applies
// commands, so no write is applied until it returns: putting the groups in
// key order (about 50 ms at 100,000 groups) is left to WriteTo, which runs
// on the snapshot's own goroutine while commands go on being applied.
func (s *FSM) Snapshot() *Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &Snapshot{groups: s.groupsUnsorted(), applied: s.applied, imported: s.imported}
}

// AppliedIndex returns the log index the snapshot was taken at.
func (sn *Snapshot) AppliedIndex() uint64 { return sn.applied }

// Len returns the number of groups in the snapshot.
func (sn *Snapshot) Len() int { return len(sn.groups) }

// WriteTo streams the snapshot in the versioned format described above,
// its groups in key order.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	sn.sorted.Do(func() { sortByKey(sn.groups) })
	return sn.writeAsListed(w)
}

// writeAsListed is WriteTo without the sort: the groups go out in the order
// sn lists them (tests write snapshots out of key order with it, which
// Restore must accept).
func (sn *Snapshot) writeAsListed(w io.Writer) (int64, error) {
	crc := crc32.NewIEEE()
	cw := &countingWriter{w: io.MultiWriter(w, crc)}
	bw := bufio.NewWriterSize(cw, 64<<10)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return cw.n, fmt.Errorf("write snapshot header: %w", err)
	}
	version := byte(snapshotVersion)
	if sn.imported != nil {
		version = snapshotVersionV2
	}
	if err := bw.WriteByte(version); err != nil {
		return cw.n, fmt.Errorf("write snapshot header: %w", err)
	}
	var buf []byte
	for _, g := range sn.groups {
		var err error
		if buf, err = encodeGroup(buf[:0], g); err != nil {
			return cw.n, err
		}
		if _, err := bw.Write(protowire.AppendVarint(nil, uint64(len(buf)))); err != nil {
			return cw.n, fmt.Errorf("write snapshot: %w", err)
		}
		if _, err := bw.Write(buf); err != nil {
			return cw.n, fmt.Errorf("write snapshot: %w", err)
		}
	}
	trailer := protowire.AppendVarint(nil, 0)
	trailer = protowire.AppendVarint(trailer, uint64(len(sn.groups)))
	trailer = protowire.AppendVarint(trailer, sn.applied)
	if r := sn.imported; r != nil {
		var rec []byte
		rec = protowire.AppendTag(rec, importFieldTime, protowire.VarintType)
		rec = protowire.AppendVarint(rec, uint64(r.TimeUnixNano))
		rec = protowire.AppendTag(rec, importFieldGroups, protowire.VarintType)
		rec = protowire.AppendVarint(rec, uint64(r.Groups))
		if r.Source != "" {
			rec = protowire.AppendTag(rec, importFieldSource, protowire.BytesType)
			rec = protowire.AppendString(rec, r.Source)
		}
		trailer = protowire.AppendBytes(trailer, rec)
	}
	if _, err := bw.Write(trailer); err != nil {
		return cw.n, fmt.Errorf("write snapshot trailer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc.Sum32())
	n, err := w.Write(sum[:])
	cw.n += int64(n)
	if err != nil {
		return cw.n, fmt.Errorf("write snapshot checksum: %w", err)
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// crcReader feeds everything read through it into a checksum.
type crcReader struct {
	r   *bufio.Reader
	crc hash.Hash32
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		_, _ = c.crc.Write([]byte{b})
	}
	return b, err
}

func (c *crcReader) readFull(p []byte) error {
	if _, err := io.ReadFull(c.r, p); err != nil {
		return err
	}
	_, _ = c.crc.Write(p)
	return nil
}

// readRecord reads a record of n bytes into buf (reused when large
// enough). The buffer grows with the bytes that arrive, never ahead of
// them: a length field that promises more than the stream holds costs no
// more memory than the stream.
func (c *crcReader) readRecord(buf []byte, n uint64) ([]byte, error) {
	if uint64(cap(buf)) >= n {
		buf = buf[:n]
		return buf, c.readFull(buf)
	}
	if n <= recordReadChunk {
		// What a large record reserves anyway; read in place, without
		// bytes.Buffer's room for more.
		buf = make([]byte, n)
		return buf, c.readFull(buf)
	}
	var b bytes.Buffer
	b.Grow(int(min(n, recordReadChunk)))
	got, err := b.ReadFrom(io.LimitReader(c.r, int64(n)))
	if err != nil {
		return nil, err
	}
	if uint64(got) < n {
		return nil, io.ErrUnexpectedEOF
	}
	_, _ = c.crc.Write(b.Bytes())
	return b.Bytes(), nil
}

// recordReadChunk is what readRecord reserves before the bytes of a large
// record arrive.
const recordReadChunk = 64 << 10

// maxGroupRecord bounds one group record, so a corrupt length cannot make
// Restore allocate without limit.
const maxGroupRecord = 1 << 30

// Restore replaces the state with the snapshot read from r. The new state is
// built aside and swapped in only when the whole snapshot checked out; on
// error the FSM is unchanged.
func (s *FSM) Restore(r io.Reader) error {
	st, err := readSnapshot(r)
	if err != nil {
		return err
	}
	// Order the exposition now, on every core, while nothing waits for the
	// state machine: otherwise the first scrape after a restart would wait
	// for it, on a node busy replaying its log.
	st.ix.settleAll()
	s.mu.Lock()
	s.install(st)
	s.applied = st.applied
	s.mu.Unlock()
	s.changed()
	return nil
}

// restoredState is a state read from a snapshot, not yet swapped in.
type restoredState struct {
	groups map[string]*Group
	ix     *index
	// series is the number of metrics the groups hold.
	series   int
	applied  uint64
	imported *ImportRecord
}

// install swaps in a restored state (all but the applied index) and drops
// the caches of the old one. Callers hold s.mu.
func (s *FSM) install(st *restoredState) {
	s.groups, s.ix, s.imported = st.groups, st.ix, st.imported
	s.exposed = nil
	s.exposeGen++
	s.series = st.series
}

// readSnapshot reads and checks a whole snapshot. Errors wrap
// ErrCorruptSnapshot.
func readSnapshot(r io.Reader) (*restoredState, error) {
	cr := &crcReader{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.NewIEEE()}
	head := make([]byte, len(snapshotMagic)+1)
	if err := cr.readFull(head); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorruptSnapshot, err)
	}
	if !bytes.Equal(head[:len(snapshotMagic)], []byte(snapshotMagic)) {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorruptSnapshot, head[:len(snapshotMagic)])
	}
	version := head[len(snapshotMagic)]
	if version != snapshotVersion && version != snapshotVersionV2 {
		return nil, fmt.Errorf("%w: unsupported version %d (this build reads %d and %d)", ErrCorruptSnapshot, version, snapshotVersion, snapshotVersionV2)
	}
	dec := newGroupDecoder()
	// firstError reports a bad record being decoded before err, found
	// later while reading.
	firstError := func(err error) error {
		if derr := dec.wait(); derr != nil {
			return derr
		}
		return err
	}
	for {
		n, err := binary.ReadUvarint(cr)
		if err != nil {
			return nil, firstError(fmt.Errorf("%w: record length after %d groups: %v", ErrCorruptSnapshot, dec.read(), err))
		}
		if n == 0 {
			break
		}
		if n > maxGroupRecord {
			return nil, firstError(fmt.Errorf("%w: group record of %d bytes", ErrCorruptSnapshot, n))
		}
		buf, number := dec.slot()
		rec, err := cr.readRecord(buf, n)
		if err != nil {
			return nil, firstError(fmt.Errorf("%w: group record %d: %v", ErrCorruptSnapshot, number, err))
		}
		if err := dec.added(rec); err != nil {
			return nil, err
		}
	}
	all, keys, err := dec.finish()
	if err != nil {
		return nil, err
	}
	groups := make(map[string]*Group, len(all))
	for _, g := range all {
		if _, dup := groups[g.Key]; dup {
			return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, errInconsistentRestore)
		}
		groups[g.Key] = g
	}
	ix, series := indexGroups(all, keys, groups)
	count, err := binary.ReadUvarint(cr)
	if err != nil {
		return nil, fmt.Errorf("%w: trailer: %v", ErrCorruptSnapshot, err)
	}
	applied, err := binary.ReadUvarint(cr)
	if err != nil {
		return nil, fmt.Errorf("%w: trailer: %v", ErrCorruptSnapshot, err)
	}
	var imported *ImportRecord
	if version == snapshotVersionV2 {
		n, err := binary.ReadUvarint(cr)
		if err != nil {
			return nil, fmt.Errorf("%w: import record: %v", ErrCorruptSnapshot, err)
		}
		if n > maxGroupRecord {
			return nil, fmt.Errorf("%w: import record of %d bytes", ErrCorruptSnapshot, n)
		}
		rec, err := cr.readRecord(nil, n)
		if err != nil {
			return nil, fmt.Errorf("%w: import record: %v", ErrCorruptSnapshot, err)
		}
		if imported, err = decodeImportRecord(rec); err != nil {
			return nil, fmt.Errorf("%w: import record: %v", ErrCorruptSnapshot, err)
		}
	}
	want := cr.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(cr.r, sum[:]); err != nil {
		return nil, fmt.Errorf("%w: checksum: %v", ErrCorruptSnapshot, err)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return nil, fmt.Errorf("%w: checksum mismatch (stored %08x, computed %08x)", ErrCorruptSnapshot, got, want)
	}
	if count != uint64(len(groups)) {
		return nil, fmt.Errorf("%w: trailer says %d groups, read %d", ErrCorruptSnapshot, count, len(groups))
	}
	return &restoredState{groups: groups, ix: ix, series: series, applied: applied, imported: imported}, nil
}

func decodeImportRecord(b []byte) (*ImportRecord, error) {
	r := &ImportRecord{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case (num == importFieldTime || num == importFieldGroups) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			if num == importFieldTime {
				r.TimeUnixNano = int64(v)
			} else {
				r.Groups = int(v)
			}
		case num == importFieldSource && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			r.Source = string(v)
		default:
			return nil, fmt.Errorf("unknown field %d in import record", num)
		}
	}
	return r, nil
}
