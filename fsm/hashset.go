package fsm

import (
	"math/bits"
	"math/rand/v2"
)

// hashSet is a set of 64-bit hashes (the index's series, one per stored
// metric): open addressing with linear probing in one slice of uint64,
// filled to at most three quarters. A Go map of 1.2 M such hashes took
// about 31 bytes per hash (slots of key and control byte, tables grown by
// doubling); this takes 8 bytes per slot, 11 to 21 per hash. Zero marks
// an empty slot; the hash 0 itself is kept aside.
//
// A hash's slot is picked by its bits mixed with a random seed of the set
// (a multiplicative hash of the hash and the seed): the hashes are of
// pushed content with a fixed seed, so whoever pushes could otherwise
// choose series whose hashes share their low bits and make one long run.
// The seed decides only where a hash sits, never what the set holds, so
// every node's state is the same.
type hashSet struct {
	slots []uint64 // len is 0 or a power of two
	shift uint8    // 64 - log2(len(slots))
	seed  uint64
	n     int  // hashes in slots
	zero  bool // the hash 0 is in the set
}

// newHashSet returns a set with room for n hashes without growing.
func newHashSet(n int) *hashSet {
	s := &hashSet{seed: rand.Uint64() | 1}
	if n > 0 {
		s.setSlots(slotsFor(n))
	}
	return s
}

// setSlots gives the set size empty slots.
func (s *hashSet) setSlots(size int) {
	s.slots = make([]uint64, size)
	s.shift = uint8(64 - bits.TrailingZeros(uint(size)))
}

// home is the slot where the search for h starts: the top bits of h mixed
// with the seed (the multiplier is odd, so different hashes spread).
func (s *hashSet) home(h uint64) uint64 {
	return ((h ^ s.seed) * 0x9e3779b97f4a7c15) >> s.shift
}

// slotsFor is the number of slots that holds n hashes at most three
// quarters full: a power of two, at least 8.
func slotsFor(n int) int {
	need := n + n/3 + 1
	if need < 8 {
		need = 8
	}
	return 1 << bits.Len(uint(need-1))
}

// Len returns the number of hashes in the set.
func (s *hashSet) Len() int {
	if s.zero {
		return s.n + 1
	}
	return s.n
}

// Has reports whether h is in the set.
func (s *hashSet) Has(h uint64) bool {
	if h == 0 {
		return s.zero
	}
	return len(s.slots) > 0 && s.slots[s.slot(h)] == h
}

// slot returns the slot holding h, or the empty slot where a search for h
// ends (slots is not empty and never full).
func (s *hashSet) slot(h uint64) uint64 {
	mask := uint64(len(s.slots) - 1)
	i := s.home(h)
	for s.slots[i] != h && s.slots[i] != 0 {
		i = (i + 1) & mask
	}
	return i
}

// Add puts h in the set and reports whether it was not there.
func (s *hashSet) Add(h uint64) bool {
	if h == 0 {
		added := !s.zero
		s.zero = true
		return added
	}
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	i := s.slot(h)
	if s.slots[i] == h {
		return false
	}
	s.slots[i] = h
	s.n++
	return true
}

// Delete takes h out of the set, if it is there. The hashes after it in
// its run move back into the gap when their own slot allows (backward
// shift deletion: no tombstones, so lookups stay as short as the set is
// full).
func (s *hashSet) Delete(h uint64) {
	if h == 0 {
		s.zero = false
		return
	}
	if len(s.slots) == 0 {
		return
	}
	i := s.slot(h)
	if s.slots[i] != h {
		return
	}
	mask := uint64(len(s.slots) - 1)
	// i is the gap. A later hash j of the run may move into it when its
	// own slot is not in (i, j], cyclically.
	for j := (i + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		home := s.home(s.slots[j])
		if (j-home)&mask >= (j-i)&mask {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = 0
	s.n--
	if len(s.slots) > 8 && s.n*8 < len(s.slots) {
		// An eighth full: half the room (a store that shrank for good
		// gives its memory back, and stays at most a quarter full).
		s.resize(len(s.slots) / 2)
	}
}

// grow doubles the slots (to 8 from none).
func (s *hashSet) grow() { s.resize(max(8, 2*len(s.slots))) }

// resize moves the hashes into size slots.
func (s *hashSet) resize(size int) {
	old := s.slots
	s.setSlots(size)
	mask := uint64(size - 1)
	for _, h := range old {
		if h == 0 {
			continue
		}
		i := s.home(h)
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = h
	}
}
