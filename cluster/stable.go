package cluster

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// voteRecordFile (under <storage.path>/raft) mirrors raft's stable store:
// the current term and the last vote. Raft's safety needs them to survive
// whatever happens to raft.db; with this copy a node whose log store is
// corrupt can start over with an empty log without ever voting twice in a
// term.
const voteRecordFile = "vote.json"

// mirroredStable is raft's stable store (raft.db) with every write also
// written, fsynced, to the vote record before it returns.
type mirroredStable struct {
	raft.StableStore
	path string

	mu   sync.Mutex
	vals map[string][]byte
}

// newMirroredStable wraps inner, whose current values are vals (as read
// by prepareRaftStorage; nil for a new store).
func newMirroredStable(inner raft.StableStore, path string, vals map[string][]byte) *mirroredStable {
	if vals == nil {
		vals = map[string][]byte{}
	}
	return &mirroredStable{StableStore: inner, path: path, vals: vals}
}

// Set implements raft.StableStore.
func (m *mirroredStable) Set(key, val []byte) error {
	if err := m.StableStore.Set(key, val); err != nil {
		return err
	}
	return m.record(key, val)
}

// SetUint64 implements raft.StableStore; raft-boltdb stores the value big
// endian, and so does the record.
func (m *mirroredStable) SetUint64(key []byte, val uint64) error {
	if err := m.StableStore.SetUint64(key, val); err != nil {
		return err
	}
	return m.record(key, binary.BigEndian.AppendUint64(nil, val))
}

func (m *mirroredStable) record(key, val []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.vals[string(key)] = append([]byte(nil), val...)
	if err := writeVoteRecord(m.path, m.vals); err != nil {
		return fmt.Errorf("write vote record: %w", err)
	}
	return nil
}

type voteRecord struct {
	Values map[string][]byte `json:"values"`
	CRC32  uint32            `json:"crc32"`
}

func voteRecordSum(vals map[string][]byte) uint32 {
	keys := slices.Sorted(maps.Keys(vals))
	h := crc32.New(castagnoli)
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s=%d:", len(k), k, len(vals[k]))
		h.Write(vals[k])
	}
	return h.Sum32()
}

func writeVoteRecord(path string, vals map[string][]byte) error {
	b, err := json.Marshal(voteRecord{Values: vals, CRC32: voteRecordSum(vals)})
	if err != nil {
		return err
	}
	return writeFileSync(path, b)
}

// readVoteRecord returns the recorded stable-store values; a missing file
// is os.ErrNotExist, a damaged one an error saying so.
func readVoteRecord(path string) (map[string][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r voteRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("vote record %s is damaged: %w", path, err)
	}
	if r.Values == nil {
		r.Values = map[string][]byte{}
	}
	if voteRecordSum(r.Values) != r.CRC32 {
		return nil, fmt.Errorf("vote record %s is damaged: checksum mismatch", path)
	}
	return r.Values, nil
}
