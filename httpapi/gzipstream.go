package httpapi

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"
)

// One gzip member made of separately compressed pieces. Each piece is raw
// DEFLATE data that a fresh compressor wrote and flushed (a sync flush: it
// ends on a byte boundary and refers to nothing before it), so pieces can
// be joined in any order into one DEFLATE stream; a final empty block ends
// it, and the gzip trailer's CRC-32 is combined from the pieces' own. One
// member, not a member per piece: some clients (curl's --compressed among
// them) read only a stream's first member.

// deflated is one piece: its compressed bytes, and the CRC-32 and length
// of what it holds.
type deflated struct {
	data []byte
	crc  uint32
	n    int
}

// flateWriters compress pieces; pooled, as each holds large tables.
var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(io.Discard, flate.BestSpeed)
	return w
}}

// deflate compresses b into one piece.
func deflate(b []byte) (deflated, error) {
	var out bytes.Buffer
	out.Grow(len(b)/4 + 64)
	fw := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(fw)
	fw.Reset(&out)
	if _, err := fw.Write(b); err != nil {
		return deflated{}, fmt.Errorf("compress a block: %w", err)
	}
	if err := fw.Flush(); err != nil {
		return deflated{}, fmt.Errorf("compress a block: %w", err)
	}
	// Kept for as long as the segment is: copied to its size (the buffer
	// grew ahead of it, by a third on average).
	return deflated{data: bytes.Clone(out.Bytes()), crc: crc32.ChecksumIEEE(b), n: len(b)}, nil
}

// flateReaders decompress pieces; pooled.
var flateReaders sync.Pool

// inflate appends the bytes the piece holds to b. A piece ends with a sync
// flush and no final block: its d.n bytes are read, not its end.
func (d *deflated) inflate(b []byte) ([]byte, error) {
	src := bytes.NewReader(d.data)
	fr, _ := flateReaders.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReader(src)
	} else if err := fr.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, fmt.Errorf("decompress a block: %w", err)
	}
	defer flateReaders.Put(fr)
	b = slices.Grow(b, d.n)
	out := b[len(b) : len(b)+d.n]
	if _, err := io.ReadFull(fr, out); err != nil {
		return nil, fmt.Errorf("decompress a block: %w", err)
	}
	return b[:len(b)+d.n], nil
}

// gzipHeader is a gzip member's header: deflate, no name, no time, the
// fastest compression (as Go's gzip.Writer at BestSpeed), unknown OS.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255}

// finalBlock is an empty final DEFLATE block (fixed Huffman codes: BFINAL,
// BTYPE 01, end of block), which ends the stream.
var finalBlock = []byte{0x03, 0x00}

// writeGzip writes pieces as one gzip member to w.
func writeGzip(w io.Writer, pieces []deflated) error {
	if _, err := w.Write(gzipHeader); err != nil {
		return err
	}
	var crc uint32
	var n uint64
	for _, p := range pieces {
		if _, err := w.Write(p.data); err != nil {
			return err
		}
		crc = crc32Combine(crc, p.crc, uint64(p.n))
		n += uint64(p.n)
	}
	trailer := binary.LittleEndian.AppendUint32(append([]byte(nil), finalBlock...), crc)
	trailer = binary.LittleEndian.AppendUint32(trailer, uint32(n))
	_, err := w.Write(trailer)
	return err
}

// crc32Combine returns the CRC-32 (IEEE) of a+b from crcA (of a), crcB
// (of b) and the length of b: zlib's crc32_combine, in GF(2) polynomial
// arithmetic modulo the reflected IEEE polynomial.
func crc32Combine(crcA, crcB uint32, lenB uint64) uint32 {
	return multModP(x2nModP(lenB, 3), crcA) ^ crcB
}

// multModP multiplies a and b modulo the CRC polynomial (bit-reflected:
// the top bit is x^0).
func multModP(a, b uint32) uint32 {
	const poly = 0xedb88320
	m := uint32(1) << 31
	var p uint32
	for {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				return p
			}
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ poly
		} else {
			b >>= 1
		}
	}
}

// x2nTable holds x^(2^k) modulo the polynomial, k = 0..31.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	t[0] = p
	for k := 1; k < 32; k++ {
		p = multModP(p, p)
		t[k] = p
	}
	return t
}()

// x2nModP returns x^(n·2^k) modulo the polynomial.
func x2nModP(n uint64, k uint) uint32 {
	p := uint32(1) << 31 // x^0
	for n != 0 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
		n >>= 1
		k++
	}
	return p
}
