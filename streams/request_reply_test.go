package streams_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// serve runs a RequestServer in the background and returns a stop function that waits
// for Serve to return.
func serve(t *testing.T, nc *nats.Conn, cfg streams.ServiceConfig, h streams.RequestHandler) (stop func() error) {
	t.Helper()
	// Serve has subscribed once one more instance of the service answers pings.
	want := instances(t, nc, cfg.Name) + 1
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- streams.RequestServer{NC: nc}.Serve(ctx, cfg, h) }()
	streamstest.Eventually(t, 10*time.Second, func() bool {
		return instances(t, nc, cfg.Name) >= want
	}, "service %s did not start", cfg.Name)
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Serve did not return within 10s")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// instances counts the running instances of a micro service by their ping replies.
func instances(t *testing.T, nc *nats.Conn, name string) int {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$SRV.PING."+name, inbox, nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := sub.NextMsg(150 * time.Millisecond); err != nil {
			return n
		}
		n++
	}
}

func TestRequestServerAnswersRequestsAndErrors(t *testing.T) {
	s := streamstest.Start(t)
	cfg := streams.ServiceConfig{Name: "echo", Endpoint: "echo", Subject: "test.echo.*"}
	serve(t, s.NC, cfg, func(ctx context.Context, req streams.Request) streams.Reply {
		if string(req.Data) == "bad" {
			return streams.Reply{ErrCode: "422", ErrDesc: "bad input", Data: []byte(`{"code":"bad"}`)}
		}
		return streams.Reply{Data: append([]byte(req.Subject+":"), req.Data...), Header: map[string][]string{"X-Seen": {req.Header["X-In"][0]}}}
	})

	msg := nats.NewMsg("test.echo.a")
	msg.Data = []byte("hello")
	msg.Header.Set("X-In", "yes")
	res, err := s.NC.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Data) != "test.echo.a:hello" || res.Header.Get("X-Seen") != "yes" {
		t.Fatalf("reply = %q headers %v", res.Data, res.Header)
	}

	res, err = s.NC.Request("test.echo.b", []byte("bad"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Header.Get(micro.ErrorCodeHeader) != "422" || res.Header.Get(micro.ErrorHeader) != "bad input" || string(res.Data) != `{"code":"bad"}` {
		t.Fatalf("error reply = %q headers %v", res.Data, res.Header)
	}
}

func TestARequestHandlerPanicAnswers500IsLoggedWithItsStackAndServingGoesOn(t *testing.T) {
	s := streamstest.Start(t)
	var logs syncBuffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetFormatter(&logrus.JSONFormatter{})
	cfg := streams.ServiceConfig{Name: "fragile", Endpoint: "fragile", Subject: "test.fragile", Log: log}
	serve(t, s.NC, cfg, func(ctx context.Context, req streams.Request) streams.Reply {
		if string(req.Data) == "boom" {
			var m map[string]int
			m["boom"]++ // a nil map write: a real runtime panic
		}
		return streams.Reply{Data: []byte("ok")}
	})

	res, err := s.NC.Request("test.fragile", []byte("boom"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Header.Get(micro.ErrorCodeHeader) != "500" || !strings.HasPrefix(res.Header.Get(micro.ErrorHeader), "internal:") {
		t.Fatalf("panic reply headers = %v", res.Header)
	}
	var p schemas.Problem
	if err := json.Unmarshal(res.Data, &p); err != nil || p.Status != 500 || p.Code != "internal" || p.Instance != "test.fragile" {
		t.Fatalf("panic reply body = %s (%v)", res.Data, err)
	}
	if strings.Contains(string(res.Data), "goroutine") {
		t.Fatalf("the stack leaked into the reply: %s", res.Data)
	}
	streamstest.Eventually(t, 5*time.Second, func() bool {
		out := logs.String()
		return strings.Contains(out, "request handler panicked") && strings.Contains(out, "assignment to entry in nil map") && strings.Contains(out, "goroutine")
	}, "the panic was not logged with its stack: %s", logs.String())

	res, err = s.NC.Request("test.fragile", []byte("fine"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Data) != "ok" || res.Header.Get(micro.ErrorCodeHeader) != "" {
		t.Fatalf("after a panic the service answers %q %v", res.Data, res.Header)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines and the test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRequestServerReplicasShareRequestsAndStopAfterAnsweringInFlightOnes(t *testing.T) {
	s := streamstest.Start(t)
	cfg := streams.ServiceConfig{Name: "work", Endpoint: "work", Subject: "test.work", Concurrency: 4}
	var a, b atomic.Int32
	release := make(chan struct{})
	stopA := serve(t, s.NC, cfg, func(ctx context.Context, req streams.Request) streams.Reply {
		a.Add(1)
		if string(req.Data) == "slow" {
			<-release
		}
		return streams.Reply{Data: []byte("a")}
	})
	other, err := s.Embedded.Connect("replica-b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	serve(t, other, cfg, func(ctx context.Context, req streams.Request) streams.Reply {
		b.Add(1)
		return streams.Reply{Data: []byte("b")}
	})
	for i := range 40 {
		if _, err := s.NC.Request("test.work", []byte(fmt.Sprint(i)), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if a.Load()+b.Load() != 40 || a.Load() == 0 || b.Load() == 0 {
		t.Fatalf("replica a answered %d, b %d: want 40 in all, shared by both", a.Load(), b.Load())
	}

	// A request in hand when Serve is told to stop is still answered.
	inbox := nats.NewInbox()
	sub, err := s.NC.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	// Publish slow requests until replica a holds one (b answers the others at once).
	held := false
	for try := 0; try < 50 && !held; try++ {
		before := a.Load()
		if err := s.NC.PublishRequest("test.work", inbox, []byte("slow")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if a.Load() > before {
				held = true
				break
			}
			if m, err := sub.NextMsg(10 * time.Millisecond); err == nil {
				if string(m.Data) != "b" {
					t.Fatalf("unexpected answer %q before the slow request was released", m.Data)
				}
				break
			}
		}
	}
	if !held {
		t.Fatal("replica a never took a slow request")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stopA() }()
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) while a request was in hand", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "a" {
		t.Fatalf("in-flight request answer = %v, %v", m, err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func TestKVCreateIsExclusiveAndKeysFilter(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	kv, err := streams.OpenKV(ctx, s.JS, streams.KVConfig{Bucket: "test_kv", TTL: time.Hour, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	// Many writers race for one key: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := kv.Create(ctx, "claim.k", []byte(fmt.Sprint(i)))
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, streams.ErrKeyExists):
				t.Errorf("Create: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d writers created the same key, want 1", wins.Load())
	}
	if _, err := kv.Get(ctx, "claim.missing"); !errors.Is(err, streams.ErrKeyNotFound) {
		t.Fatalf("Get of a missing key = %v, want ErrKeyNotFound", err)
	}
	for _, k := range []string{"idx.a.1", "idx.a.2", "idx.b.1"} {
		if err := kv.Put(ctx, k, nil); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := kv.Keys(ctx, "idx.a.*")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	if fmt.Sprint(keys) != "[idx.a.1 idx.a.2]" {
		t.Fatalf("Keys(idx.a.*) = %v", keys)
	}
	if keys, err := kv.Keys(ctx, "nothing.*"); err != nil || len(keys) != 0 {
		t.Fatalf("Keys of an empty filter = %v, %v", keys, err)
	}
	if err := kv.Delete(ctx, "idx.a.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "idx.a.1"); !errors.Is(err, streams.ErrKeyNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
}
