package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// The write path: a command from any node, validated, forwarded to the
// leader if this node does not lead, stamped and appended by the leader,
// and answered once the leader applied it (or, with LocalApplyWait, once
// this node applied it too).

// Submit proposes a command, from any node, and waits until it is
// committed and applied on the leader (and on this node when it leads, or
// with Config.LocalApplyWait). The result carries the state machine's
// verdict. Errors are *UnavailableError (certainly not applied)
// or *OutcomeUnknownError (may still be applied), or wrap
// fsm.ErrInvalidCommand for a command that is not well-formed (checked
// here and again by the leader; nothing was proposed).
func (n *Node) Submit(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	if err := fsm.Validate(cmd); err != nil {
		return nil, err
	}
	if err := n.gateFeatures(cmd); err != nil {
		return nil, err
	}
	grows := growsState(cmd.Op)
	if grows {
		if err := n.disk.check(); err != nil {
			return nil, err
		}
	}
	data, err := cmd.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.WriteTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	start := time.Now()

	// Commands are idempotent, so an attempt whose outcome is unknown (the
	// connection to the leader broke, the leader lost leadership after
	// appending) is simply tried again until the write timeout. Only if
	// no attempt is confirmed by then, the answer is "unknown" (504) when
	// one of them may have been appended, "unavailable" (503) otherwise.
	var reply applyReply
	maybeApplied := false
	done, reason := n.onLeader(ctx, 10*time.Millisecond, func(addr string, self bool) (bool, string) {
		if self {
			reply = n.applyAsLeader(data, time.Until(deadline), grows)
		} else {
			sent := time.Now()
			var err error
			reply, err = n.forward(addr, data, deadline)
			n.metrics.observeStage(stageForward, sent)
			switch {
			case err == nil:
				n.metrics.forwarded.WithLabelValues(replyCodeName(reply.code)).Inc()
			case errors.Is(err, errNotSent):
				n.metrics.forwarded.WithLabelValues("error").Inc()
				reply = applyReply{code: codeUnavailable, message: "could not reach the leader: " + err.Error()}
			default:
				n.metrics.forwarded.WithLabelValues("error").Inc()
				reply = applyReply{code: codeUnknown, message: "lost contact with the leader: " + err.Error()}
			}
		}
		switch reply.code {
		case codeOK, codeQuota, codeBadRequest, codeInsufficientStorage:
			return true, ""
		case codeUnknown:
			maybeApplied = true
		}
		return false, reply.message
	})
	if !done {
		if maybeApplied {
			return nil, &OutcomeUnknownError{Reason: fmt.Sprintf("%s; no attempt confirmed within %s", reason, n.cfg.WriteTimeout)}
		}
		return nil, &UnavailableError{Reason: fmt.Sprintf("%s within %s", reason, n.cfg.WriteTimeout)}
	}
	switch reply.code {
	case codeBadRequest:
		return nil, fmt.Errorf("%w: the leader refused it: %s", fsm.ErrInvalidCommand, reply.message)
	case codeInsufficientStorage:
		return nil, &InsufficientStorageError{Reason: reply.message}
	}
	if n.cfg.LocalApplyWait {
		defer n.metrics.observeStage(stageLocalApplyWait, time.Now())
		ch, giveUp := n.fsm.waitCh(reply.index)
		defer giveUp()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, &OutcomeUnknownError{Reason: fmt.Sprintf("committed at index %d but not applied on this node in time", reply.index)}
		}
	}
	n.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	res := &fsm.Result{Index: reply.index}
	switch {
	case reply.code == codeQuota:
		res.Err = &fsm.QuotaError{Msg: reply.message}
	case reply.message != "":
		res.Err = &fsm.ConsistencyError{Msg: reply.message}
	}
	return res, nil
}

// forward sends an encoded command to the leader's command port.
func (n *Node) forward(leaderAddr string, data []byte, deadline time.Time) (applyReply, error) {
	req := make([]byte, 0, len(data)+12)
	req = append(req, methodApply)
	req = appendUvarint(req, uint64(max(time.Until(deadline).Milliseconds(), 1)))
	req = append(req, data...)
	b, err := n.rpc.call(leaderAddr, deadline, req)
	if err != nil {
		return applyReply{}, err
	}
	return decodeApplyReply(b)
}

// applyAsLeader appends an encoded command to the log and waits for its
// commit and local application.
//
// A command that grows the state is refused while this node's storage, or
// a member's as last reported, is below its free-space reserve.
func (n *Node) applyAsLeader(data []byte, timeout time.Duration, grows bool) applyReply {
	if n.raft.State() != raft.Leader {
		return applyReply{code: codeUnavailable, message: "this node is not the leader"}
	}
	if timeout <= 0 {
		return applyReply{code: codeUnavailable, message: "write timeout exhausted"}
	}
	if grows {
		if err := n.WriteStatus(); err != nil {
			return applyReply{code: codeInsufficientStorage, message: err.Error()}
		}
	}
	data = fsm.StampCommand(data, fsm.Stamp{TimeUnixNano: n.stamp(), MaxGroups: n.cfg.MaxGroups, MaxSeries: n.cfg.MaxTotalSeries})
	start := time.Now()
	f := n.raft.ApplyLog(raft.Log{Data: data, Extensions: commandChecksum(data)}, timeout)
	err := f.Error()
	n.metrics.observeStage(stageLeader, start)
	if err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrRaftShutdown):
			return applyReply{code: codeUnavailable, message: err.Error()}
		default:
			return applyReply{code: codeUnknown, message: err.Error()}
		}
	}
	reply := applyReply{code: codeOK, index: f.Index()}
	if res, ok := f.Response().(*fsm.Result); ok && res != nil && res.Err != nil {
		reply.message = res.Err.Error()
		var quota *fsm.QuotaError
		if errors.As(res.Err, &quota) {
			reply.code = codeQuota
		}
	}
	return reply
}

func replyCodeName(c byte) string {
	switch c {
	case codeOK:
		return "ok"
	case codeUnavailable:
		return "unavailable"
	case codeUnknown:
		return "unknown"
	case codeQuota:
		return "quota"
	case codeInsufficientStorage:
		return "insufficient_storage"
	}
	return "refused"
}
