package cluster

import (
	"context"
	"crypto/tls"
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

// tlsAccepted is the first byte a node sends on a connection whose TLS
// handshake it accepted. In TLS 1.3 the client's handshake completes
// before the server has verified the client's certificate; waiting for
// this byte lets a dialer whose certificate was refused learn it at once,
// before it sends anything (so a forwarded write is certainly not applied).
const tlsAccepted byte = 'K'

// handshakeTimeout bounds the TLS handshake and the protocol byte of a new
// connection on the raft port.
const handshakeTimeout = 10 * time.Second

// muxListener accepts connections on the raft port and hands each one to
// raft or to the command server according to its first byte. Connections
// that announce anything else are closed and logged. With a TLS config,
// every connection must first complete a TLS handshake (mutual TLS when the
// config requires client certificates); each handshake runs in the
// connection's own goroutine under a deadline, so a slow or silent stranger
// delays nobody else.
type muxListener struct {
	ln        net.Listener
	advertise net.Addr
	tls       *tls.Config
	logger    *slog.Logger
	raftConns chan net.Conn
	cmdConns  chan net.Conn
	closeOnce sync.Once
	closed    chan struct{}
}

func newMuxListener(ln net.Listener, advertise net.Addr, serverTLS *tls.Config, logger *slog.Logger) *muxListener {
	m := &muxListener{
		ln: ln, advertise: advertise, tls: serverTLS, logger: logger,
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
	remote := conn.RemoteAddr().String()
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if m.tls != nil {
		tc := tls.Server(conn, m.tls)
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err == nil {
			_, err = tc.Write([]byte{tlsAccepted})
		}
		if err != nil {
			m.logger.Warn("refused connection on the raft port: TLS handshake failed", "remote", remote, "reason", err)
			conn.Close()
			return
		}
		conn = tc
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	var ch chan net.Conn
	switch b[0] {
	case protoRaft:
		ch = m.raftConns
	case protoCommand:
		ch = m.cmdConns
	default:
		m.logger.Warn("refused connection with unknown protocol on the raft port", "remote", remote, "first_byte", fmt.Sprintf("%#x", b[0]))
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
type raftLayer struct {
	m *muxListener
	d *dialer
}

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
	return l.d.dial(string(addr), protoRaft, timeout)
}

// dialer opens connections to other nodes' raft ports, with TLS when the
// cluster uses it.
type dialer struct {
	tls *tls.Config // nil: plain TCP
}

// dial connects to a node's raft port and announces the protocol. With TLS
// it completes the handshake and waits for the peer to accept it, so a
// refused certificate fails here, before anything is sent.
func (d *dialer) dial(addr string, proto byte, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	nd := &net.Dialer{Deadline: deadline}
	var conn net.Conn
	if d.tls == nil {
		c, err := nd.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		conn = c
	} else {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		c, err := (&tls.Dialer{NetDialer: nd, Config: d.tls}).DialContext(ctx, "tcp", addr)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("TLS connection to %s: %w", addr, err)
		}
		conn = c
		_ = conn.SetReadDeadline(deadline)
		var b [1]byte
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS connection to %s refused by the peer: %w", addr, err)
		}
		_ = conn.SetReadDeadline(time.Time{})
		if b[0] != tlsAccepted {
			conn.Close()
			return nil, fmt.Errorf("TLS connection to %s: unexpected first byte %#x", addr, b[0])
		}
	}
	_ = conn.SetWriteDeadline(deadline)
	if _, err := conn.Write([]byte{proto}); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}
