package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The raft port carries two protocols. A connection announces which one it
// speaks with its first byte.
const (
	protoRaft    byte = 'R'
	protoCommand byte = 'C'
)

// muxListener accepts connections on the raft port and hands each one to
// raft or to the command server according to its first byte. Connections
// that announce anything else are closed and logged.
type muxListener struct {
	ln        net.Listener
	advertise net.Addr
	logger    *slog.Logger
	raftConns chan net.Conn
	cmdConns  chan net.Conn
	closeOnce sync.Once
	closed    chan struct{}
}

func newMuxListener(ln net.Listener, advertise net.Addr, logger *slog.Logger) *muxListener {
	m := &muxListener{
		ln: ln, advertise: advertise, logger: logger,
		raftConns: make(chan net.Conn), cmdConns: make(chan net.Conn),
		closed: make(chan struct{}),
	}
	go m.serve()
	return m
}

func (m *muxListener) serve() {
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.logger.Error("accept on raft port failed", "err", err)
			return
		}
		go m.route(conn)
	}
}

func (m *muxListener) route(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	var ch chan net.Conn
	switch b[0] {
	case protoRaft:
		ch = m.raftConns
	case protoCommand:
		ch = m.cmdConns
	default:
		m.logger.Warn("refused connection with unknown protocol on the raft port", "remote", conn.RemoteAddr().String(), "first_byte", fmt.Sprintf("%#x", b[0]))
		conn.Close()
		return
	}
	select {
	case ch <- conn:
	case <-m.closed:
		conn.Close()
	}
}

func (m *muxListener) close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
	})
	return err
}

// raftLayer is raft's view of the mux: a StreamLayer whose connections all
// spoke protoRaft.
type raftLayer struct{ m *muxListener }

// Accept implements net.Listener.
func (l *raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftConns:
		return c, nil
	case <-l.m.closed:
		return nil, errors.New("raft listener closed")
	}
}

// Close implements net.Listener.
func (l *raftLayer) Close() error { return l.m.close() }

// Addr implements net.Listener with the advertised address.
func (l *raftLayer) Addr() net.Addr { return l.m.advertise }

// Dial implements raft.StreamLayer.
func (l *raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialProto(string(addr), protoRaft, timeout)
}

// dialProto connects to a node's raft port and announces the protocol.
func dialProto(addr string, proto byte, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte{proto}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
