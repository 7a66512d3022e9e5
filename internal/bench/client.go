package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
)

// submitter puts one job into the pipeline and returns its id, and whether the answer
// says the result cache completed it at once.
type submitter interface {
	Submit(ctx context.Context, name string, data []byte) (id string, cacheHit bool, err error)
}

// waiter blocks until a job reaches a final state and says when that was seen.
type waiter interface {
	Wait(ctx context.Context, id string) (time.Time, error)
	// How says how completion is observed, for the report.
	How() string
	Close()
}

// records reads final job records.
type records interface {
	Get(ctx context.Context, id string) (*schemas.JobRecord, error)
}

// jobRef is the part of a submission answer the bench needs.
type jobRef struct {
	ID       string `json:"id"`
	CacheHit bool   `json:"cache_hit"`
}

// httpSubmitter posts multipart uploads to POST /v2/jobs, as `studio submit` does.
type httpSubmitter struct {
	base   string
	hc     *http.Client
	fields map[string]string
}

func (s *httpSubmitter) Submit(ctx context.Context, name string, data []byte) (string, bool, error) {
	var body bytes.Buffer
	body.Grow(len(data) + 1024)
	mw := multipart.NewWriter(&body)
	for k, v := range s.fields {
		if v != "" {
			_ = mw.WriteField(k, v)
		}
	}
	fw, err := mw.CreateFormFile("image", name)
	if err != nil {
		return "", false, err
	}
	_, _ = fw.Write(data)
	if err := mw.Close(); err != nil {
		return "", false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/v2/jobs", &body)
	if err != nil {
		return "", false, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := s.hc.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusAccepted {
		return "", false, fmt.Errorf("POST /v2/jobs: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var j jobRef
	if err := json.Unmarshal(b, &j); err != nil || j.ID == "" {
		return "", false, fmt.Errorf("POST /v2/jobs: answer without a job id: %s", b)
	}
	return j.ID, j.CacheHit, nil
}

// errNoNATSEntry is returned when nothing answers on studio.submit.<task>.
var errNoNATSEntry = errors.New("no NATS entry answers on " + schemas.SubmitSubjectPattern + ": this studio takes jobs over HTTP only; use --entry http")

// natsSubmitter sends a schemas.JobRequest on studio.submit.<task>, as an upstream
// system does: small images inline, larger ones uploaded first under
// uploads/<tenant>/ and sent by key.
type natsSubmitter struct {
	nc *nats.Conn
	// token, when set, goes in the Authorization header: a studio with authentication
	// on admits NATS requests like HTTP ones.
	token   string
	blobs   blob.Store
	task    schemas.Task
	model   string
	version string
	params  map[string]any
	runID   string
}

// natsTenant owns the uploads the bench sends by key; it is ingest's default tenant.
const natsTenant = "local"

func (s *natsSubmitter) Submit(ctx context.Context, name string, data []byte) (string, bool, error) {
	req := schemas.JobRequest{Schema: schemas.SchemaJobSubmit, Task: s.task, Model: s.model, Version: s.version, Params: s.params, Image: &schemas.ImageInput{}}
	if len(data) <= schemas.MaxInlineImageBytes {
		req.Image.Data = data
	} else {
		if s.blobs == nil {
			return "", false, errors.New("image over the inline limit and no object store to upload it to")
		}
		key := schemas.UploadPrefix + natsTenant + "/bench-" + s.runID + "-" + name
		if _, err := s.blobs.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
			return "", false, fmt.Errorf("upload %s: %w", key, err)
		}
		req.Tenant, req.Image.Key = natsTenant, key
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", false, err
	}
	msg := nats.NewMsg(schemas.SubmitSubject(s.task))
	msg.Data = body
	if s.token != "" {
		msg.Header.Set("Authorization", "Bearer "+s.token)
	}
	reply, err := s.nc.RequestMsgWithContext(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) {
		return "", false, errNoNATSEntry
	}
	if err != nil {
		return "", false, fmt.Errorf("request on %s: %w", schemas.SubmitSubject(s.task), err)
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
		return "", false, fmt.Errorf("%s refused the job (%s %s): %s", schemas.SubmitSubject(s.task), code, reply.Header.Get("Nats-Service-Error"), reply.Data)
	}
	var r schemas.SubmitReply
	if err := json.Unmarshal(reply.Data, &r); err != nil || r.JobID == "" {
		return "", false, fmt.Errorf("%s: answer without a job id: %s", schemas.SubmitSubject(s.task), reply.Data)
	}
	return r.JobID, r.Status == schemas.StatusSucceeded, nil // only a cache hit is final at once
}

// resultWaiter learns of finished jobs from their result events
// (studio.results.<tenant>.<task>), published once per job on success and on failure.
type resultWaiter struct {
	sub     *nats.Subscription
	mu      sync.Mutex
	waiting map[string]chan time.Time
	early   map[string]time.Time // results that arrived before Wait was called
}

func newResultWaiter(nc *nats.Conn, task schemas.Task) (*resultWaiter, error) {
	w := &resultWaiter{waiting: map[string]chan time.Time{}, early: map[string]time.Time{}}
	sub, err := nc.Subscribe(schemas.ResultSubject("*", task), func(m *nats.Msg) {
		at := time.Now()
		var ev struct {
			JobID string `json:"job_id"`
		}
		if json.Unmarshal(m.Data, &ev) != nil || ev.JobID == "" {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if ch, ok := w.waiting[ev.JobID]; ok {
			delete(w.waiting, ev.JobID)
			ch <- at
			return
		}
		w.early[ev.JobID] = at
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to results: %w", err)
	}
	// A burst of finished jobs must not be dropped as a slow consumer.
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	w.sub = sub
	return w, nil
}

func (w *resultWaiter) Wait(ctx context.Context, id string) (time.Time, error) {
	w.mu.Lock()
	if at, ok := w.early[id]; ok {
		delete(w.early, id)
		w.mu.Unlock()
		return at, nil
	}
	ch := make(chan time.Time, 1)
	w.waiting[id] = ch
	w.mu.Unlock()
	select {
	case at := <-ch:
		return at, nil
	case <-ctx.Done():
		w.mu.Lock()
		delete(w.waiting, id)
		w.mu.Unlock()
		return time.Time{}, fmt.Errorf("job %s: no result event: %w", id, ctx.Err())
	}
}

func (w *resultWaiter) How() string { return "result events on studio.results.<tenant>.<task>" }

func (w *resultWaiter) Close() { _ = w.sub.Unsubscribe() }

// pollWaiter polls GET /v1/jobs/{id} when the bench has no NATS connection; at most
// gate requests are in flight, so a burst of waiting jobs does not flood the server.
type pollWaiter struct {
	api   *httpRecords
	every time.Duration
	gate  chan struct{}
}

func (w *pollWaiter) Wait(ctx context.Context, id string) (time.Time, error) {
	for {
		select {
		case w.gate <- struct{}{}:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("job %s: %w", id, ctx.Err())
		}
		rec, err := w.api.Get(ctx, id)
		<-w.gate
		if err == nil && rec.Status.Final() {
			return time.Now(), nil
		}
		select {
		case <-time.After(w.every):
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("job %s: %w", id, ctx.Err())
		}
	}
}

func (w *pollWaiter) How() string {
	return fmt.Sprintf("polling GET /v1/jobs/{id} every %s (completion times are late by up to that)", w.every)
}

func (w *pollWaiter) Close() {}

// httpRecords reads job records through the HTTP API.
type httpRecords struct {
	base string
	hc   *http.Client
}

func (h *httpRecords) Get(ctx context.Context, id string) (*schemas.JobRecord, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/v1/jobs/"+id, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("GET /v1/jobs/%s: %s: %s", id, resp.Status, b)
	}
	var rec schemas.JobRecord
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		return nil, fmt.Errorf("GET /v1/jobs/%s: %w", id, err)
	}
	return &rec, nil
}

// kvRecords reads job records straight from the KV bucket.
type kvRecords struct{ jobs *jobs.Store }

func (k kvRecords) Get(ctx context.Context, id string) (*schemas.JobRecord, error) {
	return k.jobs.Get(ctx, id)
}
