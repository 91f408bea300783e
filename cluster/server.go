package cluster

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// serveCommands answers forwarded commands and status requests arriving on
// the raft port.
func (n *Node) serveCommands() {
	defer n.wg.Done()
	for {
		select {
		case conn := <-n.mux.cmdConns:
			go n.serveConn(conn)
		case <-n.mux.closed:
			return
		case <-n.stop:
			return
		}
	}
}

func (n *Node) serveConn(conn net.Conn) {
	defer conn.Close()
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	go func() {
		<-n.stop
		conn.Close()
	}()
	for {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
		req, err := readFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				n.logger.Debug("command connection closed", "remote", conn.RemoteAddr().String(), "err", err)
			}
			return
		}
		reply, ok := n.handleRequest(conn.RemoteAddr().String(), req)
		if !ok {
			return
		}
		_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := writeFrame(w, reply); err != nil {
			return
		}
	}
}

// handleRequest answers one request; ok is false when the connection must
// be dropped (a malformed request from a stranger).
func (n *Node) handleRequest(remote string, req []byte) ([]byte, bool) {
	if len(req) == 0 {
		n.logger.Warn("refused empty request on the command port", "remote", remote)
		return nil, false
	}
	switch req[0] {
	case methodApply:
		timeoutMs, k := binary.Uvarint(req[1:])
		if k <= 0 {
			n.logger.Warn("refused malformed forwarded command", "remote", remote)
			return nil, false
		}
		data := req[1+k:]
		cmd, err := fsm.DecodeCommand(data)
		if err == nil {
			err = fsm.Validate(cmd)
		}
		if err != nil {
			n.logger.Warn("refused forwarded command", "remote", remote, "err", err)
			return applyReply{code: codeBadRequest, message: err.Error()}.encode(), true
		}
		timeout := min(time.Duration(timeoutMs)*time.Millisecond, n.cfg.WriteTimeout)
		return n.applyAsLeader(data, timeout, growsState(cmd.Op)).encode(), true
	case methodReadIndex:
		timeoutMs, k := binary.Uvarint(req[1:])
		if k <= 0 {
			n.logger.Warn("refused malformed read-index request", "remote", remote)
			return nil, false
		}
		return n.serveReadIndex(timeoutMs).encode(), true
	case methodStatus:
		return n.localStatus().encode(), true
	case methodRemove:
		return operatorReply(n.removeServer(raft.ServerID(req[1:]))).encode(), true
	case methodRemoving:
		if !n.removedByOperator.Swap(true) {
			n.logger.Warn("an operator is removing this node from the cluster: no leader adds it back until it restarts", "remote", remote)
		}
		return applyReply{code: codeOK}.encode(), true
	case methodTransfer:
		return operatorReply(n.transferLeadership(string(req[1:]))).encode(), true
	default:
		n.logger.Warn("refused unknown method on the command port", "remote", remote, "method", req[0])
		return nil, false
	}
}

// localStatus reports this node's raft progress.
func (n *Node) localStatus() statusReply {
	return statusReply{
		commitIndex:  n.raft.CommitIndex(),
		appliedIndex: n.raft.AppliedIndex(),
		lastIndex:    n.raft.LastIndex(),
		term:         n.raft.CurrentTerm(),
		wallUnixNano: n.now().UnixNano(),
		storageLow:   n.disk.isLow(),
		removed:      n.removedByOperator.Load(),
	}
}
