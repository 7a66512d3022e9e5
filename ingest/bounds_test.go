package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// A request stream at its byte bound refuses new jobs (DiscardNew); both entries answer
// 503 queue_full with Retry-After rather than a bare "unavailable", and the job takes no
// active slot.
func TestAFullRequestStreamAnswers503WithRetryAfterOnBothEntries(t *testing.T) {
	for _, entry := range admissionEntries {
		t.Run(entry.name, func(t *testing.T) {
			e := newAdmissionEnv(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			fillRequestStream(t, ctx, e.srv.JS)

			out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
			require.Equal(t, http.StatusServiceUnavailable, out.status, "%s", out.raw)
			require.Equal(t, "queue_full", out.code)
			require.Equal(t, ingest.QueueFullRetryAfter, out.retryAfter)
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultError, "queue_full", "")

			// The refused jobs gave their active slots back: bob's cap is 3, and after
			// the stream has room again 3 jobs get in.
			for range 3 {
				out = entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
				require.Equal(t, http.StatusServiceUnavailable, out.status, "%s", out.raw)
			}
			st, err := e.srv.JS.Stream(ctx, schemas.StreamRequests)
			require.NoError(t, err)
			require.NoError(t, st.Purge(ctx))
			for range 3 {
				out = entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
				require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
			}
		})
	}
}

// fillRequestStream bounds REQUESTS to 8 KiB and publishes until it refuses.
func fillRequestStream(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	st, err := js.Stream(ctx, schemas.StreamRequests)
	require.NoError(t, err)
	cfg := st.CachedInfo().Config
	cfg.MaxBytes = 8 << 10
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	pub := streams.JSPublisher{JS: js}
	for i := range 100 {
		err = pub.Publish(ctx, streams.Output{Subject: schemas.RequestSubject(schemas.TierFree, schemas.TaskRemoveBackground), MsgID: fmt.Sprint("filler-", i), Data: bytes.Repeat([]byte("x"), 1024)})
		if err != nil {
			require.True(t, streams.IsFull(err), "filling REQUESTS: %v", err)
			return
		}
	}
	t.Fatal("REQUESTS took 100 KiB under an 8 KiB bound")
}

// countingBody counts the bytes a handler read of a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// A rate-limited caller is refused before its body is read: the server answers 429
// having read (next to) nothing of a 10 MB body.
func TestARateLimitedCallerIsRefusedBeforeItsBodyIsRead(t *testing.T) {
	e := newSecureEnv(t)
	var read atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = countingBody{ReadCloser: r.Body, n: &read}
		e.svc.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(api.Close)
	for range 2 { // carol's free tier allows 2 requests an hour
		out := submitHTTP(t, e, submission{bearer: e.tokens["carol"], body: jobBody(t)})
		require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
	}
	const size = 10 << 20
	for _, path := range []string{"/v2/jobs", "/v1/jobs", "/v2/predict", "/v2/batches"} {
		t.Run("POST "+path, func(t *testing.T) {
			read.Store(0)
			req, err := http.NewRequest(http.MethodPost, api.URL+path, io.LimitReader(zeros{}, size))
			require.NoError(t, err)
			req.ContentLength = size
			req.Header.Set("Content-Type", "multipart/form-data; boundary=xyz")
			req.Header.Set("Authorization", "Bearer "+e.tokens["carol"])
			res, err := api.Client().Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			require.Equal(t, http.StatusTooManyRequests, res.StatusCode, "%s", raw)
			require.NotEmpty(t, res.Header.Get("Retry-After"))
			require.Less(t, read.Load(), int64(64<<10), "the handler read %d of %d body bytes of a rate-limited caller", read.Load(), size)
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Event streams outlive the server's read and write timeouts: a job may run for many
// minutes, so the WebSocket and SSE handlers lift both deadlines for their connection.
func TestEventStreamsOutliveTheServerTimeouts(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name   string
		follow func(t *testing.T, url string, run func()) schemas.Status
	}{
		{"a WebSocket gets the final state after the timeouts passed", func(t *testing.T, url string, run func()) schemas.Status {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), nil)
			require.NoError(t, err)
			defer c.CloseNow()
			var f ingest.EventFrame
			require.NoError(t, wsjson.Read(ctx, c, &f))
			time.Sleep(3 * timeout) // past both deadlines, with nothing to send
			run()
			for f.Status != schemas.StatusSucceeded && f.Status != schemas.StatusFailed {
				require.NoError(t, wsjson.Read(ctx, c, &f), "the stream ended before the final state")
			}
			return f.Status
		}},
		{"server-sent events get the final state after the timeouts passed", func(t *testing.T, url string, run func()) schemas.Status {
			res, err := http.Get(url)
			require.NoError(t, err)
			defer res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode)
			sc := bufio.NewScanner(res.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			var last schemas.Status
			ran := false
			for sc.Scan() {
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					var j ingest.JobResponse
					require.NoError(t, json.Unmarshal([]byte(data), &j))
					last = j.Status
					if !ran {
						time.Sleep(3 * timeout)
						run()
						ran = true
					}
				}
			}
			require.NoError(t, sc.Err())
			return last
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline(t, ingest.Config{})
			srv := httptest.NewUnstartedServer(p.svc.Handler())
			srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeout, timeout
			srv.Start()
			t.Cleanup(srv.Close)
			job := p.submitPNG(t)
			final := tc.follow(t, srv.URL+"/v1/jobs/"+job.ID+"/events", func() { p.runAll(); p.openAll() })
			require.Equal(t, schemas.StatusSucceeded, final)
		})
	}
}
