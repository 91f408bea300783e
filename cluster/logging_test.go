package cluster

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/pushgateway-cluster/pushgateway-cluster/internal/testutil"
)

func TestRaftLinesMapToTheirLevels(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{`[INFO]  raft: entering leader state: leader="Node at 127.0.0.1:1 [Leader]"`, "DEBUG"},
		{`[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=`, "DEBUG"},
		{`[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr=127.0.0.1:2 last-leader-id=n2`, "WARN"},
		{`[ERROR] raft: failed to appendEntries to: peer=n2`, "ERROR"},
		{`[WARN]  raft: rejecting pre-vote request since we have a leader: from=127.0.0.1:3 leader=127.0.0.1:2 leader-id=n2`, "DEBUG"},
		{`[WARN]  raft: rejecting pre-vote request since our last term is greater: candidate=127.0.0.1:3`, "WARN"},
	} {
		out := &testutil.LockedBuffer{}
		w := &logWriter{l: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})), component: "raft"}
		if _, err := w.Write([]byte(c.line + "\n")); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "level="+c.want) {
			t.Errorf("%q logged as %q, want level %s", c.line, out.String(), c.want)
		}
	}
}
