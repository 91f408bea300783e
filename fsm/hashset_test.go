package fsm

import (
	"maps"
	"math/rand"
	"testing"
)

// hashSetMap returns the hashes of s as a map, for comparisons.
func hashSetMap(s *hashSet) map[uint64]bool {
	m := map[uint64]bool{}
	if s.zero {
		m[0] = true
	}
	for _, h := range s.slots {
		if h != 0 {
			m[h] = true
		}
	}
	return m
}

// TestHashSetAgreesWithAMap adds and deletes random hashes, most from a
// small range of slots so that runs collide and wrap around the end, with
// 0 among them, and after every step compares the set with a map: length,
// membership of every hash tried, and the whole content at intervals. It
// grows from empty and from a given size, and shrinks when emptied.
func TestHashSetAgreesWithAMap(t *testing.T) {
	for _, start := range []int{0, 1000} {
		r := rand.New(rand.NewSource(int64(start) + 1))
		s, want := newHashSet(start), map[uint64]bool{}
		var tried []uint64
		pick := func() uint64 {
			switch r.Intn(4) {
			case 0:
				return r.Uint64()
			case 1:
				if len(tried) > 0 {
					return tried[r.Intn(len(tried))]
				}
			case 2:
				// The same low bits: one long run of collisions.
				return uint64(r.Intn(64))<<32 | 7
			}
			return uint64(r.Intn(3000)) // 0 included; around the end of small tables
		}
		for step := range 40000 {
			h := pick()
			tried = append(tried, h)
			if step < 25000 || r.Intn(3) == 0 {
				if added := s.Add(h); added == want[h] {
					t.Fatalf("start %d step %d: Add(%d) = %v with the hash present: %v", start, step, h, added, want[h])
				}
				want[h] = true
			} else {
				s.Delete(h)
				delete(want, h)
			}
			if s.n*4 > len(s.slots)*3 {
				t.Fatalf("start %d step %d: %d hashes in %d slots, more than three quarters full", start, step, s.n, len(s.slots))
			}
			if s.Len() != len(want) {
				t.Fatalf("start %d step %d: %d hashes, want %d", start, step, s.Len(), len(want))
			}
			if x := tried[r.Intn(len(tried))]; s.Has(x) != want[x] {
				t.Fatalf("start %d step %d: Has(%d) = %v, want %v", start, step, x, s.Has(x), want[x])
			}
			if step%5000 == 0 && !maps.Equal(hashSetMap(s), want) {
				t.Fatalf("start %d step %d: the set's content differs from the map's", start, step)
			}
		}
		for h := range want {
			s.Delete(h)
		}
		if s.Len() != 0 || len(s.slots) > 8 || s.Has(tried[0]) {
			t.Fatalf("start %d: emptied set holds %d hashes in %d slots", start, s.Len(), len(s.slots))
		}
	}
}

// TestHashSetSizes checks the room given for n hashes: a power of two,
// never more than three quarters full, at most about twice n.
func TestHashSetSizes(t *testing.T) {
	for _, n := range []int{1, 5, 6, 7, 100, 1 << 20, 1_200_000} {
		size := slotsFor(n)
		if size&(size-1) != 0 || n*4 > size*3 || (n > 6 && size > 3*n) {
			t.Errorf("slotsFor(%d) = %d", n, size)
		}
	}
}

// TestHashSetSpreadsChosenHashes adds 10,000 hashes that share their low
// 32 bits (which would all start in one slot if the low bits picked it):
// the seeded mixing spreads them, so no search walks far from where it
// starts.
func TestHashSetSpreadsChosenHashes(t *testing.T) {
	s := newHashSet(0)
	for i := range uint64(10000) {
		s.Add(i<<32 | 0xdead)
	}
	mask := uint64(len(s.slots) - 1)
	longest := uint64(0)
	for i, h := range s.slots {
		if h != 0 {
			longest = max(longest, (uint64(i)-s.home(h))&mask)
		}
	}
	if longest > 200 {
		t.Fatalf("a hash sits %d slots after where its search starts, in %d slots", longest, len(s.slots))
	}
}
