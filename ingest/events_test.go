package ingest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

type wsClient struct {
	t     *testing.T
	c     *websocket.Conn
	pings *atomic.Int32
}

func (e *env) dialEvents(t *testing.T, id string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pings := &atomic.Int32{}
	u := "ws" + strings.TrimPrefix(e.api.URL, "http") + "/v1/jobs/" + id + "/events"
	c, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		pings.Add(1)
		return true
	}})
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c, pings: pings}
}

// next reads one frame; it fails the test after 30s.
func (w *wsClient) next() ingest.EventFrame {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var f ingest.EventFrame
	require.NoError(w.t, wsjson.Read(ctx, w.c, &f))
	require.Equal(w.t, f.Status, f.Job.Status, "a frame's summary matches its job")
	return f
}

// until reads frames until one satisfies ok, checking that percent never decreases.
func (w *wsClient) until(last *int, ok func(ingest.EventFrame) bool) ingest.EventFrame {
	w.t.Helper()
	for {
		f := w.next()
		require.GreaterOrEqual(w.t, f.Percent, *last, "percent went down: frame %+v", f)
		*last = f.Percent
		if ok(f) {
			return f
		}
	}
}

// closed waits for the server to close the socket and returns the close status.
func (w *wsClient) closed() websocket.StatusCode {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, _, err := w.c.Read(ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func atStage(status schemas.Status, stage schemas.Stage) func(ingest.EventFrame) bool {
	return func(f ingest.EventFrame) bool { return f.Status == status && f.Stage == stage }
}

func TestWebSocketShowsEveryStageWithRisingPercentThenSucceeds(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	job := p.submitPNG(t)
	require.True(t, strings.HasPrefix(job.WebSocketURL, "ws://"), "websocket_url %q is absolute", job.WebSocketURL)
	require.True(t, strings.HasSuffix(job.WebSocketURL, "/v1/jobs/"+job.ID+"/events"))

	ws := p.dialEvents(t, job.ID)
	first := ws.next()
	require.Equal(t, ingest.FrameState, first.Type, "the current state comes first")
	require.Equal(t, schemas.StatusQueued, first.Status)
	require.Equal(t, 1, first.QueuePosition)

	p.runAll()
	last := first.Percent
	var seen []int
	for _, st := range processors.StageNames() {
		f := ws.until(&last, atStage(schemas.StatusRunning, st))
		require.Equal(t, ingest.FrameProgress, f.Type)
		require.Equal(t, processors.StagePercent(st), f.Percent)
		seen = append(seen, f.Percent)
		p.release(st, 1)
	}
	f := ws.until(&last, func(f ingest.EventFrame) bool { return f.Status.Final() })
	require.Equal(t, schemas.StatusSucceeded, f.Status)
	require.Equal(t, 100, f.Percent)
	require.Contains(t, f.Job.Downloads, "cutout")
	require.IsIncreasing(t, append(seen, 100))
	require.Equal(t, websocket.StatusNormalClosure, ws.closed(), "the socket closes normally after the final state")

	// The result downloads.
	r := p.do(t, http.MethodGet, f.Job.Downloads["cutout"], nil, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "image/png", r.contentType)

	// The status has per-stage timings, in pipeline order in v2.
	r = p.do(t, http.MethodGet, "/v2/jobs/"+job.ID, nil, "")
	require.Equal(t, http.StatusOK, r.status)
	var v2 ingest.JobV2
	require.NoError(t, json.Unmarshal(r.body, &v2))
	require.Len(t, v2.Timings, len(processors.StageNames()))
	for i, st := range processors.StageNames() {
		tm := v2.Timings[i]
		require.Equal(t, st, tm.Stage)
		require.False(t, tm.FinishedAt.Before(tm.StartedAt))
		require.Positive(t, tm.DurationMS)
		require.Equal(t, "test-"+string(st), tm.Worker)
	}
	require.Nil(t, v2.Queue, "no queue details once running")
	require.Equal(t, "cutout", v2.Results[0].Name)
	require.Equal(t, f.Job.Downloads["cutout"], v2.Results[0].URL)
	v1 := p.do(t, http.MethodGet, "/v1/jobs/"+job.ID, nil, "")
	var j ingest.JobResponse
	require.NoError(t, json.Unmarshal(v1.body, &j))
	require.Len(t, j.Stages, len(processors.StageNames()), "v1 keeps the stage map")
}

func TestWebSocketReconnectMidJobResumesFromTheCurrentState(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	job := p.submitPNG(t)
	ws := p.dialEvents(t, job.ID)
	last := ws.next().Percent
	p.runAll()
	p.release(schemas.StagePreprocess, 1)
	ws.until(&last, atStage(schemas.StatusRunning, schemas.StageInference)) // held at the inference gate
	require.NoError(t, ws.c.Close(websocket.StatusGoingAway, "client going away"))

	// Work goes on while nobody listens.
	p.release(schemas.StageInference, 1)
	p.waitStage(t, job.ID, schemas.StagePostprocess)

	again := p.dialEvents(t, job.ID)
	f := again.next()
	require.Equal(t, ingest.FrameState, f.Type, "a reconnect starts with the current state")
	require.Equal(t, schemas.StatusRunning, f.Status)
	require.Equal(t, schemas.StagePostprocess, f.Stage)
	require.GreaterOrEqual(t, f.Percent, last)
	last = f.Percent
	p.release(schemas.StagePostprocess, 1)
	p.release(schemas.StageStore, 1)
	f = again.until(&last, func(f ingest.EventFrame) bool { return f.Status.Final() })
	require.Equal(t, schemas.StatusSucceeded, f.Status)
}

func TestCancelMidJobEndsInCancelledAndLaterStagesSkipIt(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	results := p.subscribeResults(t)
	job := p.submitPNG(t)
	ws := p.dialEvents(t, job.ID)
	last := ws.next().Percent
	p.runAll()
	p.release(schemas.StagePreprocess, 1)
	ws.until(&last, atStage(schemas.StatusRunning, schemas.StageInference)) // held at the inference gate

	r := p.do(t, http.MethodDelete, "/v1/jobs/"+job.ID, nil, "")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var cancelled ingest.JobResponse
	require.NoError(t, json.Unmarshal(r.body, &cancelled))
	require.Equal(t, schemas.StatusCancelled, cancelled.Status)

	f := ws.until(&last, func(f ingest.EventFrame) bool { return f.Status.Final() })
	require.Equal(t, schemas.StatusCancelled, f.Status)
	require.Equal(t, websocket.StatusNormalClosure, ws.closed())

	ev := results.next(t)
	require.Equal(t, job.ID, ev.JobID)
	require.Equal(t, schemas.StatusCancelled, ev.Status, "a cancelled result event is published")

	// The inference in hand finishes; postprocess sees the cancellation and skips it,
	// so store never gets it.
	p.release(schemas.StageInference, 1)
	p.waitConsumerIdle(t, schemas.StreamInferred, "postprocess-normal", 1)
	rec, err := p.jobs.Get(context.Background(), job.ID)
	require.NoError(t, err)
	require.Equal(t, schemas.StatusCancelled, rec.Status)
	require.NotNil(t, rec.Stages[schemas.StageInference])
	require.Nil(t, rec.Stages[schemas.StagePostprocess], "postprocess must skip a cancelled job")
	p.waitConsumerIdle(t, schemas.StreamPostprocessed, "store-normal", 0)
	results.none(t, 100*time.Millisecond)

	// Cancelling again changes nothing; a finished job cannot be cancelled.
	r = p.do(t, http.MethodDelete, "/v2/jobs/"+job.ID, nil, "")
	require.Equal(t, http.StatusOK, r.status)
	results.none(t, 100*time.Millisecond)
	done := p.submitPNG(t)
	p.openAll()
	p.waitStatus(t, done.ID, schemas.StatusSucceeded)
	requireProblem(t, p.do(t, http.MethodDelete, "/v1/jobs/"+done.ID, nil, ""), http.StatusConflict, "job_finished")
	requireProblem(t, p.do(t, http.MethodDelete, "/v1/jobs/01hzzzzzzzzzzzzzzzzzzzzzzz", nil, ""), http.StatusNotFound, "job_not_found")
}

func TestWebSocketReportsQueuePositionWhileWaiting(t *testing.T) {
	p := newPipeline(t, ingest.Config{QueueInterval: 50 * time.Millisecond})
	p.runAll()
	a := p.submitPNG(t)
	p.waitStage(t, a.ID, schemas.StagePreprocess) // a is held in preprocess
	b := p.submitPNG(t)
	c := p.submitPNG(t)
	require.Equal(t, 3, c.QueuePosition, "a is in progress and b waits ahead of c")

	ws := p.dialEvents(t, c.ID)
	f := ws.next()
	require.Equal(t, ingest.FrameState, f.Type)
	require.Equal(t, schemas.StatusQueued, f.Status)
	p.release(schemas.StagePreprocess, 1) // a moves on; b takes its place
	p.waitStage(t, b.ID, schemas.StagePreprocess)
	for f.QueuePosition != 2 {
		f = ws.next()
		require.Equal(t, schemas.StatusQueued, f.Status)
	}
	require.Equal(t, ingest.FrameQueue, f.Type, "the position is recomputed from the tier's backlog")
}

func TestWebSocketPingsAndServerShutdownAsksClientsToReconnect(t *testing.T) {
	p := newPipeline(t, ingest.Config{PingInterval: 30 * time.Millisecond})
	job := p.submitPNG(t)
	ws := p.dialEvents(t, job.ID)
	ws.next()
	// Control frames are handled while the client reads.
	status := make(chan websocket.StatusCode, 1)
	go func() { status <- ws.closed() }()
	streamsEventually(t, func() bool { return ws.pings.Load() >= 2 }, "no pings received")
	p.svc.Close()
	select {
	case st := <-status:
		require.Equal(t, websocket.StatusGoingAway, st, "shutdown tells clients to reconnect")
	case <-time.After(30 * time.Second):
		t.Fatal("the socket stayed open after Close")
	}
}

func TestServerSentEventsStreamTheJobUntilItFinishes(t *testing.T) {
	p := newPipeline(t, ingest.Config{PingInterval: 20 * time.Millisecond})
	job := p.submitPNG(t)
	req, err := http.NewRequest(http.MethodGet, p.api.URL+"/v1/jobs/"+job.ID+"/events", nil)
	require.NoError(t, err)
	res, err := p.api.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var statuses []schemas.Status
	pings := 0
	started := false
	for sc.Scan() {
		if !started && len(statuses) == 1 {
			// The current state has arrived; now let the job run.
			p.runAll()
			p.openAll()
			started = true
		}
		line := sc.Text()
		if line == ": ping" {
			pings++
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var j ingest.JobResponse
			require.NoError(t, json.Unmarshal([]byte(data), &j))
			statuses = append(statuses, j.Status)
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, statuses)
	require.Equal(t, schemas.StatusQueued, statuses[0], "the current state comes first")
	require.Equal(t, schemas.StatusSucceeded, statuses[len(statuses)-1], "the stream ends after the final state")
	require.Contains(t, statuses, schemas.StatusRunning)
	t.Logf("%d job events, %d pings", len(statuses), pings)
}

func TestEventsOfAnUnknownJobAreNotFound(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	requireProblem(t, e.do(t, http.MethodGet, "/v1/jobs/01hzzzzzzzzzzzzzzzzzzzzzzz/events", nil, ""), http.StatusNotFound, "job_not_found")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.api.URL, "http")+"/v1/jobs/01hzzzzzzzzzzzzzzzzzzzzzzz/events", nil)
	require.Error(t, err)
	require.Equal(t, http.StatusNotFound, res.StatusCode)
}

// waitConsumerIdle polls until a durable consumer has delivered at least n messages
// and holds none pending or unacknowledged.
func (e *env) waitConsumerIdle(t *testing.T, stream, durable string, n uint64) {
	t.Helper()
	ctx := context.Background()
	streamsEventually(t, func() bool {
		c, err := e.srv.JS.Consumer(ctx, stream, durable)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.Delivered.Consumer >= n && info.NumPending == 0 && info.NumAckPending == 0
	}, "consumer %s on %s did not settle", durable, stream)
}

// waitStage polls until the job has begun stage st.
func (e *env) waitStage(t *testing.T, id string, st schemas.Stage) {
	t.Helper()
	streamsEventually(t, func() bool {
		rec, err := e.jobs.Get(context.Background(), id)
		return err == nil && rec.Stages[st] != nil
	}, "job %s never reached %s", id, st)
}

func streamsEventually(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	streamstest.Eventually(t, 30*time.Second, cond, msg, args...)
}
