package streamstest

import (
	"net"
	"sync"
	"testing"
)

// Direction is a way bytes flow through a Proxy.
type Direction uint8

const (
	// Up is from the clients that connect to the proxy to its upstream server.
	Up Direction = 1 << iota
	// Down is from the upstream server back to the clients.
	Down
	// Both is Up and Down.
	Both = Up | Down
)

// Proxy forwards TCP connections to an upstream server and can hold the bytes flowing
// one way or both, as a network partition does: the connections stay open and nothing
// arrives (what was sent waits, as in a sender's TCP buffers, until it is let through),
// so each end notices only by its own timeouts. It stands between a client and a
// server, or between two nodes of a cluster (one Proxy per route direction).
type Proxy struct {
	addr     string
	upstream string
	l        net.Listener

	mu     sync.Mutex
	cond   *sync.Cond
	held   Direction
	closed bool
	conns  map[net.Conn]struct{}
}

// StartProxy listens on a free loopback port and forwards every connection accepted
// there to upstream (dialed per connection). It stops, closing every connection, at the
// test's cleanup.
func StartProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy to %s: listen: %v", upstream, err)
	}
	p := &Proxy{addr: l.Addr().String(), upstream: upstream, l: l, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(p.Close)
	go p.accept()
	return p
}

// Addr is the proxy's address (host:port): connect there instead of to the upstream.
func (p *Proxy) Addr() string { return p.addr }

// Hold holds the bytes flowing the ways in d, on the connections open now and on those
// made later, and lets the other way flow; Hold(0) lets everything through again, the
// held bytes first, in order.
func (p *Proxy) Hold(d Direction) {
	p.mu.Lock()
	p.held = d
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Open is the number of connections open through the proxy.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2 // each is a pair: the client's and the upstream's
}

// Close stops accepting, lets the held bytes go and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed, p.held = true, 0
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	p.cond.Broadcast()
	p.l.Close()
	for c := range conns {
		c.Close()
	}
}

func (p *Proxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close() // the upstream refused: so does the proxy
			continue
		}
		if !p.track(c, u) {
			return
		}
		go p.pipe(u, c, Up)
		go p.pipe(c, u, Down)
	}
}

// track records a connection pair so that Close can end it; false once closed.
func (p *Proxy) track(c, u net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		u.Close()
		return false
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	return true
}

// pipe copies src to dst, waiting while d is held; when either side ends it closes
// both, so the other end sees the connection go as one.
func (p *Proxy) pipe(dst, src net.Conn, d Direction) {
	defer func() {
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.held&d != 0 {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
