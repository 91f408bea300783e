package cluster

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The command protocol between nodes, on the raft port after protoCommand:
// a sequence of frames (uvarint length, payload) alternating request and
// response on one connection. A request starts with a method byte.
const (
	methodApply  byte = 1 // [uvarint timeout ms][encoded fsm.Command] → applyReply
	methodStatus byte = 2 // [] → statusReply
	methodRemove byte = 3 // [server name] → applyReply (index 0)
	// methodTransfer asks the leader to hand over leadership.
	methodTransfer byte = 4 // [target server name, may be empty] → applyReply (index 0)
	// methodReadIndex asks the leader for a read index (readindex.go).
	methodReadIndex byte = 5 // [uvarint timeout ms] → applyReply (index: the read index)
	// methodRemoving tells a member that an operator is removing it
	// (leader.go, noticeRemoval).
	methodRemoving byte = 6 // [] → applyReply (index 0)
)

// Reply codes of methodApply, methodRemove and methodTransfer.
const (
	codeOK          byte = 0 // applied; the message is the state machine's verdict ("" = accepted)
	codeUnavailable byte = 1 // certainly not applied
	codeUnknown     byte = 2 // appended, outcome unknown
	codeBadRequest  byte = 3 // refused (undecodable command, unknown server)
	// codeQuota: applied, and the state machine refused the push for a
	// quota; the message says which. (A build before quotas treats it as
	// an unknown outcome and retries until its write timeout.)
	codeQuota byte = 4
	// codeInsufficientStorage: refused, not appended: a node's storage is
	// below its free-space reserve (the message says which).
	codeInsufficientStorage byte = 5
)

// maxFrame bounds one frame so a stranger cannot make a node allocate
// without limit.
const maxFrame = 256 << 20

func writeFrame(w *bufio.Writer, payload []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(payload)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	return w.Flush()
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxFrame {
		return nil, fmt.Errorf("frame of %d bytes exceeds the limit of %d", n, maxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// applyReply is the one reply encoding of the command port:
// [code][uvarint index][message]. The index is the applied (methodApply)
// or read (methodReadIndex) index, 0 for operator methods.
type applyReply struct {
	code    byte
	index   uint64
	message string
}

func (r applyReply) encode() []byte {
	b := []byte{r.code}
	b = binary.AppendUvarint(b, r.index)
	return append(b, r.message...)
}

// decodeApplyReply decodes a reply. Builds before 2026-12 answered the
// operator methods with [code][message]: a lone code byte from them decodes
// as that code, and a message from them loses its first character, which
// only a rolling upgrade's mixed versions can show.
func decodeApplyReply(b []byte) (applyReply, error) {
	switch len(b) {
	case 0:
		return applyReply{}, errors.New("empty reply")
	case 1:
		return applyReply{code: b[0]}, nil
	}
	idx, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return applyReply{}, errors.New("bad index in apply reply")
	}
	return applyReply{code: b[0], index: idx, message: string(b[1+n:])}, nil
}

// statusReply is a node's raft progress, its wall clock, whether its
// storage is below its free-space reserve and whether an operator removed
// it while it runs (told by methodRemoving). The clock and the two flags were added
// after the others; a reply without them (an older build) decodes with
// zero values.
type statusReply struct {
	commitIndex, appliedIndex, lastIndex, term uint64
	wallUnixNano                               int64
	storageLow                                 bool
	removed                                    bool
}

func (s statusReply) encode() []byte {
	var b []byte
	for _, v := range []uint64{s.commitIndex, s.appliedIndex, s.lastIndex, s.term, uint64(s.wallUnixNano), flag(s.storageLow), flag(s.removed)} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func flag(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// statusOf asks the node at the raft address addr for its status.
func (n *Node) statusOf(addr string, deadline time.Time) (statusReply, error) {
	reply, err := n.rpc.call(addr, deadline, []byte{methodStatus})
	if err != nil {
		return statusReply{}, err
	}
	return decodeStatusReply(reply)
}

func decodeStatusReply(b []byte) (statusReply, error) {
	var vals [7]uint64
	for i := range vals {
		if i >= 4 && len(b) == 0 {
			break
		}
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return statusReply{}, errors.New("bad status reply")
		}
		vals[i], b = v, b[n:]
	}
	return statusReply{vals[0], vals[1], vals[2], vals[3], int64(vals[4]), vals[5] == 1, vals[6] == 1}, nil
}

// rpcClient keeps a few idle connections per peer address.
type rpcClient struct {
	d    *dialer
	mu   sync.Mutex
	idle map[string][]*rpcConn
}

type rpcConn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

const maxIdlePerPeer = 16

// alive reports whether an idle connection is still open: the peer has
// not closed or reset it (a crashed or restarted peer). Sending a request
// on a dead connection would make its outcome look unknown.
func (rc *rpcConn) alive() bool {
	_ = rc.conn.SetReadDeadline(time.Now())
	_, err := rc.r.Peek(1)
	_ = rc.conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func newRPCClient(d *dialer) *rpcClient { return &rpcClient{d: d, idle: map[string][]*rpcConn{}} }

func (c *rpcClient) get(addr string, timeout time.Duration) (*rpcConn, bool, error) {
	for {
		c.mu.Lock()
		conns := c.idle[addr]
		if len(conns) == 0 {
			c.mu.Unlock()
			break
		}
		rc := conns[len(conns)-1]
		c.idle[addr] = conns[:len(conns)-1]
		c.mu.Unlock()
		if rc.alive() {
			return rc, true, nil
		}
		rc.conn.Close()
	}
	conn, err := c.d.dial(addr, protoCommand, timeout)
	if err != nil {
		return nil, false, err
	}
	return &rpcConn{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}, false, nil
}

func (c *rpcClient) put(addr string, rc *rpcConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle[addr]) >= maxIdlePerPeer {
		rc.conn.Close()
		return
	}
	c.idle[addr] = append(c.idle[addr], rc)
}

func (c *rpcClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, conns := range c.idle {
		for _, rc := range conns {
			rc.conn.Close()
		}
		delete(c.idle, addr)
	}
}

// errNotSent means the request never reached the peer: it was certainly
// not applied.
var errNotSent = errors.New("request not sent")

// call sends one request and reads one reply before the deadline. An error
// wrapping errNotSent means the peer cannot have seen the request.
func (c *rpcClient) call(addr string, deadline time.Time, req []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		rc, reused, err := c.get(addr, time.Until(deadline))
		if err != nil {
			return nil, fmt.Errorf("%w: dial %s: %v", errNotSent, addr, err)
		}
		_ = rc.conn.SetDeadline(deadline)
		if err := writeFrame(rc.w, req); err != nil {
			rc.conn.Close()
			if reused && attempt == 0 {
				// A pooled connection the peer closed meanwhile: the
				// write failed before anything was delivered.
				continue
			}
			return nil, fmt.Errorf("%w: write to %s: %v", errNotSent, addr, err)
		}
		reply, err := readFrame(rc.r)
		if err != nil {
			rc.conn.Close()
			if reused && attempt == 0 && errors.Is(err, io.EOF) {
				// The peer had closed the idle connection before our
				// request arrived; a closed connection delivers nothing.
				continue
			}
			return nil, fmt.Errorf("read reply from %s: %w", addr, err)
		}
		_ = rc.conn.SetDeadline(time.Time{})
		c.put(addr, rc)
		return reply, nil
	}
}
