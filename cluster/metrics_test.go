package cluster

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// stageCount is how many writes n recorded in the given stage.
func stageCount(t *testing.T, n *testNode, stage string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := n.metrics.stageSeconds.WithLabelValues(stage).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestWriteStagesAreRecordedWhereTheyHappen pushes through a follower:
// the follower records the forward round trip, the leader its append to
// apply, every node the entry's apply; no one waits for its own apply
// without LocalApplyWait.
func TestWriteStagesAreRecordedWhereTheyHappen(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.byName(c.waitReadyAll())
	follower := c.anyBut(leader.name)
	push(t, follower.Node, 1e9, "staged 1\n", map[string]string{"job": "stages"})
	c.assertIdentical()
	for _, want := range []struct {
		n     *testNode
		stage string
	}{{follower, stageForward}, {leader, stageLeader}, {leader, stageApply}, {follower, stageApply}} {
		if got := stageCount(t, want.n, want.stage); got == 0 {
			t.Errorf("%s recorded no %s stage", want.n.name, want.stage)
		}
	}
	if got := stageCount(t, follower, stageLocalApplyWait); got != 0 {
		t.Errorf("%s waited for its own apply %d times without LocalApplyWait", follower.name, got)
	}
}

// TestApplyReplyDecodesTheOperatorRepliesOfOlderBuilds: builds before the
// one reply encoding answered remove and transfer with [code][message];
// the code is always read right.
func TestApplyReplyDecodesTheOperatorRepliesOfOlderBuilds(t *testing.T) {
	if r, err := decodeApplyReply([]byte{codeOK}); err != nil || r.code != codeOK {
		t.Fatalf("lone code byte: %+v %v", r, err)
	}
	if r, err := decodeApplyReply(append([]byte{codeBadRequest}, "no server x"...)); err != nil || r.code != codeBadRequest {
		t.Fatalf("old coded reply: %+v %v", r, err)
	}
	want := applyReply{code: codeUnavailable, message: "not the leader"}
	if r, err := decodeApplyReply(operatorReply(&UnavailableError{Reason: "not the leader"}).encode()); err != nil || r.code != want.code || !strings.Contains(r.message, want.message) {
		t.Fatalf("round trip: %+v %v", r, err)
	}
}
