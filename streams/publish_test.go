package streams_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestAPublishWhoseAckNeverComesFailsWithinItsTimeout cuts the connection between the
// publisher and a real server (a proxy stops forwarding; the TCP connection stays
// open, as with a paused node or one that turned JetStream off) and checks that a
// Publish under a caller's context with no deadline fails after the publisher's own
// bound, so its message is redelivered instead of standing still; and that it works
// again once the connection does.
func TestAPublishWhoseAckNeverComesFailsWithinItsTimeout(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	if _, err := s.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "PUBT", Subjects: []string{"pubt.>"}}); err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, strings.TrimPrefix(s.Embedded.ClientURL(), "nats://"))
	nc, err := nats.Connect("nats://" + px.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const bound = 300 * time.Millisecond
	pub := streams.JSPublisher{JS: js, Timeout: bound}
	out := streams.Output{Subject: "pubt.a", MsgID: "job:stage", Data: []byte("x")}
	if err := pub.Publish(ctx, out); err != nil {
		t.Fatal(err)
	}
	px.pause(true)
	began := time.Now()
	err = pub.Publish(ctx, streams.Output{Subject: "pubt.a", MsgID: "job:next", Data: []byte("y")})
	took := time.Since(began)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish with the server cut off: %v, want a timeout", err)
	}
	if took > 10*bound {
		t.Fatalf("publish gave up after %s; want about its bound %s", took, bound)
	}
	px.pause(false)
	pub.Timeout = 10 * time.Second
	if err := pub.Publish(ctx, streams.Output{Subject: "pubt.a", MsgID: "job:next", Data: []byte("y")}); err != nil {
		t.Fatalf("publish once the connection works again: %v", err)
	}
}

// proxy forwards TCP connections to a server; paused, it holds every byte (the
// connections stay open, nothing arrives), like a node that stopped or a partition.
type proxy struct {
	addr   string
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
}

func startProxy(t *testing.T, upstream string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &proxy{addr: l.Addr().String()}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(func() { p.pause(false) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(u, c)
			go p.pipe(c, u)
		}
	}()
	return p
}

func (p *proxy) pause(on bool) {
	p.mu.Lock()
	p.paused = on
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.paused {
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
