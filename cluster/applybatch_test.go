package cluster

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// commandLog is command c as raft's log entry index, checksummed as the
// leader writes it.
func commandLog(t *testing.T, index uint64, c *fsm.Command) *raft.Log {
	t.Helper()
	data, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data, Extensions: commandChecksum(data)}
}

// batchLogs is a batch as raft hands it over: pushes, a configuration
// entry among them, and commands that fail (an invalid label name, a type
// conflict), n entries from index first.
func batchLogs(t *testing.T, first uint64, n int) []*raft.Log {
	var logs []*raft.Log
	for i := range n {
		index := first + uint64(i)
		var c *fsm.Command
		switch {
		case i == 2:
			logs = append(logs, &raft.Log{Index: index, Term: 1, Type: raft.LogConfiguration, Data: []byte("configuration")})
			continue
		case i%5 == 3:
			c = &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": "j", "bad-name": "x"}, TimeUnixNano: int64(index)}
		case i%5 == 4:
			c = &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": fmt.Sprint("c", i)}, TimeUnixNano: int64(index),
				Families: mustParse(t, "# TYPE m counter\nm{i=\"x\"} 1\n")}
		default:
			c = &fsm.Command{Op: fsm.OpPut, Labels: map[string]string{"job": fmt.Sprint("g", i%7)}, TimeUnixNano: int64(index),
				Families: mustParse(t, fmt.Sprintf("# TYPE m gauge\nm{i=\"%d\"} %d\n", i, i))}
		}
		logs = append(logs, commandLog(t, index, c))
	}
	return logs
}

// mustParse parses a text-format push body of one family.
func mustParse(t *testing.T, body string) []*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	m, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil || len(m) != 1 {
		t.Fatalf("parse %q: %v", body, err)
	}
	for _, mf := range m {
		return []*dto.MetricFamily{mf}
	}
	return nil
}

// snapshotBytes is the state machine's snapshot.
func snapshotBytes(t *testing.T, s *fsm.FSM) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A batch applied with its commands decoded ahead (on helpers, and small
// batches without) leaves the state, the results and the applied index
// that applying its entries one by one does.
func TestApplyBatchAppliesAsApplyDoes(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, n := range []int{1, minDecodeAhead - 1, minDecodeAhead, 64, 256} {
		one, batch := newRaftFSM(fsm.New(nil)), newRaftFSM(fsm.New(nil))
		var want []interface{}
		var got []interface{}
		for round := range 3 {
			logs := batchLogs(t, uint64(round*n+1), n)
			for _, l := range logs {
				if l.Type == raft.LogCommand { // as raft's applySingle
					want = append(want, one.Apply(l))
				} else {
					want = append(want, nil)
				}
			}
			got = append(got, batch.ApplyBatch(logs)...)
		}
		if len(got) != len(want) {
			t.Fatalf("n=%d: %d results, want %d", n, len(got), len(want))
		}
		failed := 0
		for i := range want {
			w, _ := want[i].(*fsm.Result)
			g, _ := got[i].(*fsm.Result)
			if (w == nil) != (g == nil) || w != nil && (w.Index != g.Index || fmt.Sprint(w.Err) != fmt.Sprint(g.Err)) {
				t.Fatalf("n=%d: result %d is %+v, applied alone %+v", n, i, g, w)
			}
			if w != nil && w.Err != nil {
				failed++
			}
		}
		if n >= 5 && failed == 0 {
			t.Fatalf("n=%d: no command failed: the batch does not test failures", n)
		}
		if !bytes.Equal(snapshotBytes(t, batch.state), snapshotBytes(t, one.state)) || batch.appliedIndex() != one.appliedIndex() {
			t.Fatalf("n=%d: the batch left another state (applied %d, alone %d)", n, batch.appliedIndex(), one.appliedIndex())
		}
	}
}

// An entry whose checksum does not match stops the node when its turn
// comes, after the entries before it are applied, even when a helper
// decoded it ahead.
func TestApplyBatchStopsAtADamagedEntry(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	logs := batchLogs(t, 1, 32)
	logs[20].Data = bytes.Clone(logs[20].Data)
	logs[20].Data[len(logs[20].Data)-1] ^= 1
	r := newRaftFSM(fsm.New(nil))
	func() {
		defer func() {
			if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "entry 21: checksum mismatch") {
				t.Fatalf("panic %v, want the damaged entry 21's", p)
			}
		}()
		r.ApplyBatch(logs)
	}()
	if r.appliedIndex() != 20 {
		t.Fatalf("applied up to %d before the damaged entry, want 20", r.appliedIndex())
	}
}
