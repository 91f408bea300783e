package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

// hostileEntries are commands that decode but are not well-formed: what a
// build with a validation gap, or a hostile peer, could put into the log.
func hostileEntries(t *testing.T) map[string][]byte {
	t.Helper()
	gauge := func(name string, typ dto.MetricType) []*dto.MetricFamily {
		return []*dto.MetricFamily{{Name: proto.String(name), Type: typ.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}}}}}
	}
	enc := func(c *fsm.Command) []byte {
		b, err := c.Encode()
		if err != nil {
			t.Fatalf("encode hostile command: %v", err)
		}
		return b
	}
	wipeWithLabel := enc(&fsm.Command{Op: fsm.OpWipe, TimeUnixNano: 1})
	lp, _ := proto.Marshal(&dto.LabelPair{Name: proto.String("job"), Value: proto.String("j")})
	wipeWithLabel = protowire.AppendTag(wipeWithLabel, 5, protowire.BytesType)
	wipeWithLabel = protowire.AppendBytes(wipeWithLabel, lp)
	return map[string][]byte{
		"reserved grouping label": enc(&fsm.Command{Op: fsm.OpPut, TimeUnixNano: 1,
			Labels: map[string]string{"job": "j", "__foo": "bar"}, Families: gauge("a", dto.MetricType_GAUGE)}),
		"empty job": enc(&fsm.Command{Op: fsm.OpPut, TimeUnixNano: 1, Labels: map[string]string{"job": ""}, Families: gauge("a", dto.MetricType_GAUGE)}),
		"invalid UTF-8 grouping value": enc(&fsm.Command{Op: fsm.OpPost, TimeUnixNano: 1,
			Labels: map[string]string{"job": "j", "instance": "\xc3\x28"}, Families: gauge("a", dto.MetricType_GAUGE)}),
		"family without a name": enc(&fsm.Command{Op: fsm.OpPut, TimeUnixNano: 1, Labels: map[string]string{"job": "j"}, Families: gauge("", dto.MetricType_GAUGE)}),
		"unknown type":          enc(&fsm.Command{Op: fsm.OpPut, TimeUnixNano: 1, Labels: map[string]string{"job": "j"}, Families: gauge("a", dto.MetricType(99))}),
		"unchecked gauge holding a counter": enc(&fsm.Command{Op: fsm.OpPut, TimeUnixNano: 1, Unchecked: true,
			Labels: map[string]string{"job": "j"}, Families: gauge("a", dto.MetricType_COUNTER)}),
		"expiry of a reserved label set": enc(&fsm.Command{Op: fsm.OpExpire, TimeUnixNano: 1, CutoffUnixNano: 1 << 62,
			Expire: []map[string]string{{"job": "", "__bad": "x"}}}),
		"import of a group without job": enc(&fsm.Command{Op: fsm.OpImport, TimeUnixNano: 1, Source: "s",
			Import: []*fsm.Group{{Labels: fsm.LabelsOf(map[string]string{"instance": "i"}), Families: fsm.Families{}}}}),
		"delete without job": enc(&fsm.Command{Op: fsm.OpDelete, TimeUnixNano: 1, Labels: map[string]string{"instance": "i"}}),
		"wipe with a label":  wipeWithLabel,
		"restore of a poisoned snapshot": enc(&fsm.Command{Op: fsm.OpRestore, TimeUnixNano: 1,
			Snapshot: testutil.RawSnapshot(map[string]string{"job": "", "__bad": "x"}, gauge("g", dto.MetricType_GAUGE)...)}),
	}
}

// TestHostileLogEntriesCrashNoNode appends hostile commands straight to
// the leader's raft log, past every door: every node applies each with the
// same refusal and no change, stays up, and replays them after a restart.
func TestHostileLogEntriesCrashNoNode(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.byName(c.waitReadyAll())
	push(t, leader.Node, 1e9, "kept 1\n", map[string]string{"job": "keep"})
	before := c.assertIdentical()

	for name, data := range hostileEntries(t) {
		f := leader.raft.ApplyLog(raft.Log{Data: data, Extensions: commandChecksum(data)}, 5*time.Second)
		if err := f.Error(); err != nil {
			t.Fatalf("%s: append: %v", name, err)
		}
		res, ok := f.Response().(*fsm.Result)
		if !ok || res.Err == nil || !(errors.Is(res.Err, fsm.ErrInvalidCommand) || errors.Is(res.Err, fsm.ErrRestoreRefused)) {
			t.Errorf("%s: applied with %#v, want a refusal", name, f.Response())
		}
		// The doors refuse it too, on the leader and on a follower.
		cmd, err := fsm.DecodeCommand(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, n := range []*testNode{leader, c.anyBut(leader.name)} {
			if _, err := n.Submit(context.Background(), cmd); !errors.Is(err, fsm.ErrInvalidCommand) {
				t.Errorf("%s: Submit on %s: %v", name, n.name, err)
			}
		}
		if reply := leader.handleApply(t, data); reply.code != codeBadRequest {
			t.Errorf("%s: forwarded to the leader: %+v", name, reply)
		}
	}
	last := leader.raft.LastIndex()
	for _, n := range c.nodes {
		waitFor(t, n.name+" applied the hostile entries", 10*time.Second, func() bool { return n.state.AppliedIndex() >= last })
	}
	if got := c.assertIdentical(); got != before {
		t.Fatalf("hostile entries changed the state:\n%s\nwant\n%s", got, before)
	}

	// Every node restarts once and replays the entries from its log.
	for i, n := range c.nodes {
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
		peer := c.nodes[(i+1)%len(c.nodes)].GossipAddress()
		c.nodes[i] = c.startAgain(n, restartConfig(n, 3, []string{peer}))
		c.waitReadyAll()
	}
	if got := c.assertIdentical(); got != before || !strings.Contains(got, `kept{instance="",job="keep"} 1`) {
		t.Fatalf("after restarts:\n%s\nwant\n%s", got, before)
	}
}

// handleApply sends data to the node's command handler as a forwarded
// command and decodes the reply.
func (n *testNode) handleApply(t *testing.T, data []byte) applyReply {
	t.Helper()
	req := append([]byte{methodApply}, appendUvarint(nil, 1000)...)
	b, ok := n.handleRequest("test", append(req, data...))
	if !ok {
		t.Fatal("connection dropped")
	}
	reply, err := decodeApplyReply(b)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}
