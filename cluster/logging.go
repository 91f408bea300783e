package cluster

import (
	"context"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Raft's and memberlist's loggers, forwarded to the node's slog logger.

// newHCLogger routes raft's hclog output into the node's slog logger.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		DisableTime: true,
		Level:       hclog.Info,
		Output:      &logWriter{l: l, component: "raft"},
	})
}

// logWriter forwards the formatted lines of raft's and memberlist's
// loggers to slog: warnings and errors at their level, everything else
// (elections, peers added, snapshots: raft's INFO chatter) at debug, so a
// node's default log says what a user needs; --log.level=debug shows them.
type logWriter struct {
	l         *slog.Logger
	component string
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.Contains(line, "[ERR"):
		level = slog.LevelError
	case strings.Contains(line, "[WARN]") && !firstElection(line) && !preVoteRefusedForLeader(line):
		level = slog.LevelWarn
	}
	if w.component == "memberlist" && isEncryptionError(line) {
		// memberlist logs a failed join attempt at debug level only, and
		// drops the error when another address (often this node's own)
		// answered: a key mismatch must be visible at the default level.
		if level < slog.LevelWarn {
			level = slog.LevelWarn
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(line, "[DEBUG]"), "[INFO]"))
		}
		w.l.Log(context.Background(), level, line, "module", w.component, "hint", gossipKeyHint)
		return len(p), nil
	}
	w.l.Log(context.Background(), level, line, "module", w.component)
	return len(p), nil
}

// firstElection reports raft's warning that it starts an election without
// ever having known a leader: every cluster's first start, and a lone
// node's every start, which is no cause for a warning.
func firstElection(line string) bool {
	return strings.Contains(line, "heartbeat timeout reached, starting election") &&
		strings.Contains(line, "last-leader-addr= last-leader-id=")
}

// preVoteRefusedForLeader reports raft's warning that it refused a pre-vote
// because it follows a leader: what pre-vote is for, and what every other
// voter answers a node that stands as soon as it restarts
// (restartelection.go).
func preVoteRefusedForLeader(line string) bool {
	return strings.Contains(line, "rejecting pre-vote request since we have a leader")
}
