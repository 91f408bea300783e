package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Operator actions (admin API, CLI): removing a member, moving leadership.
// They run on the leader, reached from any node through onLeader.

// leaderOp runs an operator action on the leader: locally when this node
// leads, otherwise through the command port of the leader, retried until
// the write timeout while no leader is reachable.
func (n *Node) leaderOp(ctx context.Context, what string, method byte, payload []byte, local func() error) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.WriteTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var result error
	done, reason := n.onLeader(ctx, 20*time.Millisecond, func(addr string, self bool) (bool, string) {
		if self {
			err := local()
			var u *UnavailableError
			if errors.As(err, &u) {
				return false, u.Reason
			}
			result = err
			return true, ""
		}
		b, err := n.rpc.call(addr, deadline, append([]byte{method}, payload...))
		if err != nil {
			return false, err.Error()
		}
		reply, err := decodeApplyReply(b)
		switch {
		case err != nil:
			return false, err.Error()
		case reply.code == codeOK:
			return true, ""
		case reply.code == codeBadRequest:
			result = errors.New(reply.message)
			return true, ""
		}
		return false, reply.message
	})
	switch {
	case done:
		return result
	case reason == errStopping:
		return &UnavailableError{Reason: reason}
	default:
		return &UnavailableError{Reason: fmt.Sprintf("%s: %s", what, reason)}
	}
}

// operatorReply is the answer of an operator method on the command port:
// the reply of every method, with no index.
func operatorReply(err error) applyReply {
	if err == nil {
		return applyReply{code: codeOK}
	}
	var u *UnavailableError
	code := codeBadRequest
	if errors.As(err, &u) {
		code = codeUnavailable
	}
	return applyReply{code: code, message: err.Error()}
}

// transferLeadership hands leadership to another voter, to the one named
// to if not empty; this node must be the leader.
func (n *Node) transferLeadership(to string) error {
	if n.raft.State() != raft.Leader {
		return &UnavailableError{Reason: "this node is not the leader"}
	}
	var f raft.Future
	if to == "" {
		if n.voterCount() < 2 {
			return errors.New("no other voter to transfer leadership to")
		}
		f = n.raft.LeadershipTransfer()
	} else {
		if to == n.name {
			return fmt.Errorf("%s is the leader already", to)
		}
		cf := n.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return err
		}
		var target *raft.Server
		for _, s := range cf.Configuration().Servers {
			if string(s.ID) == to {
				s := s
				target = &s
			}
		}
		switch {
		case target == nil:
			return fmt.Errorf("no server %q in the raft configuration", to)
		case target.Suffrage != raft.Voter:
			return fmt.Errorf("%s is not a voter", to)
		}
		f = n.raft.LeadershipTransferToServer(target.ID, target.Address)
	}
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return &UnavailableError{Reason: err.Error()}
		}
		return fmt.Errorf("leadership transfer: %w", err)
	}
	n.logger.Info("transferred leadership on request", "to", to)
	return nil
}

// TransferLeadership asks the leader, through any node, to hand leadership
// to another voter (to names it; empty lets raft pick the most up-to-date
// one), and waits until this node knows the new leader, whose name it
// returns. Errors are *UnavailableError when no leader could be reached.
func (n *Node) TransferLeadership(ctx context.Context, to string) (string, error) {
	_, before := n.raft.LeaderWithID()
	if err := n.leaderOp(ctx, "transfer leadership", methodTransfer, []byte(to), func() error { return n.transferLeadership(to) }); err != nil {
		return "", err
	}
	deadline := time.Now().Add(n.cfg.WriteTimeout)
	for {
		_, id := n.raft.LeaderWithID()
		if id != "" && id != before && (to == "" || string(id) == to) {
			return string(id), nil
		}
		if time.Now().After(deadline) {
			return string(id), nil
		}
		if !n.sleep(10 * time.Millisecond) {
			return "", &UnavailableError{Reason: "node is shutting down"}
		}
	}
}
