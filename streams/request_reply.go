package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
)

// This file holds what a request-reply front door (ingest) needs from NATS without
// importing nats.go itself: a responder for core NATS requests, and small KV buckets
// that remember the reply given to a request (idempotency keys) and who made it (a
// per-caller index).

// Request is one message on a served subject.
type Request struct {
	Subject string
	Header  map[string][]string
	Data    []byte
	// Reply is the inbox the requester waits on; empty for a plain publish, which gets
	// no answer.
	Reply string
}

// Reply answers a Request. A non-empty ErrCode marks an error reply: the NATS micro
// headers Nats-Service-Error-Code (ErrCode) and Nats-Service-Error (ErrDesc) are set,
// and Data carries the structured error.
type Reply struct {
	Data    []byte
	Header  map[string][]string
	ErrCode string
	ErrDesc string
}

// RequestHandler answers one request. It may be called from several goroutines at once;
// ctx ends after ServiceConfig.Timeout. A panic is recovered: the requester gets a 500
// problem and the server keeps serving.
type RequestHandler func(ctx context.Context, req Request) Reply

// ServiceConfig describes a request-reply endpoint.
type ServiceConfig struct {
	// Name and Version identify the service in `nats micro ls` (Version is semver).
	Name, Version, Description string
	// Endpoint names the endpoint; Subject is what it listens on (wildcards allowed).
	Endpoint, Subject string
	// QueueGroup spreads requests over every process serving the subject (default
	// "studio").
	QueueGroup string
	// Concurrency bounds requests handled at once per process (default 16); further
	// requests wait in the subscription's pending buffer.
	Concurrency int
	// Timeout bounds one handler call (default 30s).
	Timeout time.Duration
	// Log receives handler panics with their stack (default: the standard logger).
	Log logrus.FieldLogger
}

// RequestServer answers core NATS requests as a NATS micro service, so `nats micro
// info` lists it with its request counts and errors. Safe for concurrent use.
type RequestServer struct {
	NC *nats.Conn
}

// Serve answers requests on cfg.Subject until ctx is cancelled, then stops listening
// and waits for the requests in hand to be answered.
func (s RequestServer) Serve(ctx context.Context, cfg ServiceConfig, h RequestHandler) error {
	if s.NC == nil {
		return errors.New("streams: request server has no NATS connection")
	}
	if cfg.QueueGroup == "" {
		cfg.QueueGroup = "studio"
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 16
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Version == "" {
		cfg.Version = "1.0.0"
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	sem := make(chan struct{}, cfg.Concurrency)
	var (
		inflight sync.WaitGroup
		mu       sync.Mutex
		stopped  bool
	)
	workCtx := context.WithoutCancel(ctx)
	handle := micro.HandlerFunc(func(req micro.Request) {
		mu.Lock()
		if stopped {
			// Stopping drains the subscription asynchronously; what arrives now is
			// refused so the requester retries on another replica.
			mu.Unlock()
			_ = req.Error("503", "the service is shutting down; retry", nil)
			return
		}
		inflight.Add(1)
		mu.Unlock()
		sem <- struct{}{} // blocks the subscription when full: backpressure, not loss
		go func() {
			defer inflight.Done()
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(workCtx, cfg.Timeout)
			defer cancel()
			in := Request{Subject: req.Subject(), Header: map[string][]string(req.Headers()), Data: req.Data(), Reply: req.Reply()}
			out := safeHandle(rctx, cfg.Log, h, in)
			if in.Reply == "" {
				return
			}
			// The reply is published on the connection, not through req: micro records
			// the outcome of req.Respond/Error in the request without a lock and reads
			// it once the handler returns, which this goroutine outlives (a data race).
			reply := &nats.Msg{Subject: in.Reply, Data: out.Data, Header: nats.Header{}}
			for k, v := range out.Header {
				reply.Header[k] = v
			}
			if out.ErrCode != "" {
				reply.Header.Set(micro.ErrorHeader, out.ErrDesc)
				reply.Header.Set(micro.ErrorCodeHeader, out.ErrCode)
			}
			if err := s.NC.PublishMsg(reply); err != nil {
				cfg.Log.WithError(err).WithField("subject", in.Subject).Warn("could not send the reply; the requester times out and may retry")
			}
		}()
	})
	svc, err := micro.AddService(s.NC, micro.Config{
		Name:        cfg.Name,
		Version:     cfg.Version,
		Description: cfg.Description,
		QueueGroup:  cfg.QueueGroup,
	})
	if err != nil {
		return fmt.Errorf("streams: start service %s: %w", cfg.Name, err)
	}
	if err := svc.AddEndpoint(cfg.Endpoint, handle, micro.WithEndpointSubject(cfg.Subject)); err != nil {
		_ = svc.Stop()
		return fmt.Errorf("streams: serve %s on %s: %w", cfg.Endpoint, cfg.Subject, err)
	}
	<-ctx.Done()
	err = svc.Stop()
	mu.Lock()
	stopped = true
	mu.Unlock()
	inflight.Wait()
	if err != nil {
		return fmt.Errorf("streams: stop service %s: %w", cfg.Name, err)
	}
	return nil
}

// safeHandle calls h, turning a panic into a 500 problem reply: one bad request must
// not take the service down, and its stack goes to the log, never to the requester.
func safeHandle(ctx context.Context, log logrus.FieldLogger, h RequestHandler, in Request) (out Reply) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		log.WithFields(logrus.Fields{"subject": in.Subject, "panic": fmt.Sprint(v), "stack": string(debug.Stack())}).
			Error("request handler panicked; answered 500")
		p := schemas.NewProblem(http.StatusInternalServerError, "internal", "the request failed inside the service; retry, and report it if it keeps failing")
		p.Instance = in.Subject
		data, _ := json.Marshal(p)
		out = Reply{Data: data, ErrCode: "500", ErrDesc: p.Code + ": " + p.Detail,
			Header: map[string][]string{"Content-Type": {"application/problem+json"}}}
	}()
	return h(ctx, in)
}
