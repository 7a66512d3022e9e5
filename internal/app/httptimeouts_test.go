package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestSlowHeadersAreCutOffAfterReadHeaderTimeout trickles a request's headers one byte
// at a time (slowloris) and expects the server to drop the connection once the header
// timeout passed, long before the client would have finished.
func TestSlowHeadersAreCutOffAfterReadHeaderTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	go func() {
		errc <- ServeHTTPWith(ctx, "127.0.0.1:0", h, HTTPTimeouts{ReadHeader: 300 * time.Millisecond}, func(a net.Addr) { addrc <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatalf("server did not start: %v", err)
	}
	// The server's header deadline starts when it accepts the connection, which may be
	// before Dial returns: start the clock before dialling.
	start := time.Now()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, c) // returns when the server drops the connection
		closed <- time.Since(start)
	}()
	header := []byte("GET / HTTP/1.1\r\nHost: studio\r\nX-Slow: ")
	if _, err := c.Write(header); err != nil {
		t.Fatal(err)
	}
	trickle := time.NewTicker(50 * time.Millisecond)
	defer trickle.Stop()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case d := <-closed:
			if d < 300*time.Millisecond {
				t.Fatalf("connection closed after %v, before the header timeout", d)
			}
			return
		case <-trickle.C:
			_, _ = c.Write([]byte("a")) // never ends the header line
		case <-deadline:
			t.Fatal("a client trickling its headers still holds the connection after 10 s")
		}
	}
}

// TestZeroTimeoutsTakeTheDefaults keeps an embedder's zero Config from serving without
// timeouts.
func TestZeroTimeoutsTakeTheDefaults(t *testing.T) {
	if got, want := (HTTPTimeouts{}).withDefaults(), DefaultHTTPTimeouts(); got != want {
		t.Fatalf("zero timeouts became %+v, want the defaults %+v", got, want)
	}
	if got := (HTTPTimeouts{Read: time.Hour}).withDefaults().Read; got != time.Hour {
		t.Fatalf("a set read timeout became %v, want 1h", got)
	}
}
