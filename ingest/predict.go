package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
)

// Synchronous predict: POST /vN/predict admits a job exactly as POST /vN/jobs does (the
// same body, the same Admit) and then waits for the job's record to become final,
// watching its KV key, for as long as the client's Prefer: wait=N allows.

// PredictDefaultWait is how long POST /vN/predict waits when the request sends no
// Prefer: wait=N; PredictMaxWait bounds what a client may ask for.
const (
	PredictDefaultWait = 30 * time.Second
	PredictMaxWait     = 60 * time.Second
)

// PredictInlineMaxBytes is the largest result POST /v2/predict?inline=true puts into
// the answer as base64; larger results are links only.
const PredictInlineMaxBytes = 1 << 20

// predictInput is the input of POST /v1/predict; huma reads parameters only from a
// struct's own fields, hence no embedding of submitInput.
type predictInput struct {
	IdempotencyKey string `header:"Idempotency-Key" doc:"as for POST /jobs"`
	TraceParent    string `header:"traceparent" doc:"W3C trace context; the job joins this trace"`
	Prefer         string `header:"Prefer" doc:"wait=N: wait up to N seconds for the job to finish (default 30, at most 60; larger values are cut to 60). Other preferences are ignored."`
}

// predictInputV2 is the input of POST /v2/predict.
type predictInputV2 struct {
	IdempotencyKey string `header:"Idempotency-Key" doc:"as for POST /jobs"`
	TraceParent    string `header:"traceparent" doc:"W3C trace context; the job joins this trace"`
	Prefer         string `header:"Prefer" doc:"wait=N: wait up to N seconds for the job to finish (default 30, at most 60; larger values are cut to 60). Other preferences are ignored."`
	Inline         bool   `query:"inline" doc:"put each result of at most 1 MiB into results[].data as base64 (larger ones stay links)"`
}

type predictOutput[T any] struct {
	Status            int
	Location          string `header:"Location"`
	Replayed          string `header:"Idempotent-Replayed" doc:"true when an Idempotency-Key matched an earlier request"`
	PreferenceApplied string `header:"Preference-Applied" doc:"the wait that applied, wait=N"`
	Body              T
}

func (s *Service) registerPredictRoutes(api huma.API) {
	v1 := versioned{version: "v1", deprecated: true}
	v2 := versioned{version: "v2", latest: true}
	op := func(body string) huma.Operation {
		return huma.Operation{
			OperationID: "predict", Method: http.MethodPost, Path: "/predict", Tags: []string{"jobs"},
			Summary: "Run a job and wait for it",
			Description: "Takes what POST /jobs takes and admits the job the same way, then waits for it to finish, up to `Prefer: wait=N` seconds " +
				"(default 30, at most 60). **200**: the job reached a final state — `succeeded` with its results, or `failed` / `cancelled` with its error; read `status`. " +
				"**202**: the wait ran out; the body and `Location` are what POST /jobs answers, and the job goes on (follow it as any job). " +
				"A client that goes away does not cancel the job. " + body,
			DefaultStatus: http.StatusOK, RequestBody: jsonAndMultipart(),
			Errors:   []int{400, 409, 413, 415, 422, 429, 503},
			Metadata: declare(scoped(auth.ScopeJobsWrite).audited(auth.ActionJobSubmit)),
		}
	}
	route(s, api, v1, op("Results are links (`downloads`)."), func(ctx context.Context, in *predictInput) (*predictOutput[JobResponse], error) {
		rec, replayed, applied, r, err := s.handlePredict(ctx, in)
		if err != nil {
			return nil, err
		}
		out := &predictOutput[JobResponse]{Status: predictStatus(rec), Replayed: replayedHeader(replayed), PreferenceApplied: applied, Body: viewV1(rec, s.wsBase(r))}
		if out.Status == http.StatusAccepted {
			out.Location = jobPath("v1", rec.ID)
		}
		return out, nil
	})
	route(s, api, v2, op("With `?inline=true` each result of at most 1 MiB also comes as base64 in `results[].data`."), func(ctx context.Context, in *predictInputV2) (*predictOutput[JobV2], error) {
		rec, replayed, applied, r, err := s.handlePredict(ctx, &predictInput{IdempotencyKey: in.IdempotencyKey, TraceParent: in.TraceParent, Prefer: in.Prefer})
		if err != nil {
			return nil, err
		}
		out := &predictOutput[JobV2]{Status: predictStatus(rec), Replayed: replayedHeader(replayed), PreferenceApplied: applied, Body: viewV2(rec, s.wsBase(r))}
		if out.Status == http.StatusAccepted {
			out.Location = jobPath("v2", rec.ID)
		}
		if in.Inline && rec.Status == schemas.StatusSucceeded {
			if err := s.inlineResults(ctx, rec, out.Body.Results); err != nil {
				return nil, s.asProblem(err, "predict inline results")
			}
		}
		return out, nil
	})
}

// predictStatus is 200 for a job in a final state and 202 for one still under way.
func predictStatus(rec *schemas.JobRecord) int {
	if rec.Status.Final() {
		return http.StatusOK
	}
	return http.StatusAccepted
}

// handlePredict admits the job through handleSubmit and waits for it. It returns the
// latest record seen and the Preference-Applied value.
func (s *Service) handlePredict(ctx context.Context, in *predictInput) (*schemas.JobRecord, bool, string, *http.Request, error) {
	rec, replayed, r, err := s.handleSubmit(ctx, &submitInput{IdempotencyKey: in.IdempotencyKey, TraceParent: in.TraceParent})
	if err != nil {
		return nil, false, "", r, err
	}
	wait := preferredWait(in.Prefer)
	final, err := s.awaitFinal(ctx, rec, wait)
	if err != nil {
		// The job is queued; a failed watch must not lose it, so answer as /jobs does.
		s.log.WithError(err).WithField("job_id", rec.ID).Warn("predict: watching the job failed; answering 202")
		final = rec
	}
	return final, replayed, "wait=" + strconv.Itoa(int(wait/time.Second)), r, nil
}

// preferredWait reads wait=N (seconds) from a Prefer header (RFC 7240 §4.3): absent or malformed gives PredictDefaultWait, larger than
// PredictMaxWait gives PredictMaxWait.
func preferredWait(prefer string) time.Duration {
	for _, pref := range strings.Split(prefer, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(pref), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
			continue
		}
		val, _, _ = strings.Cut(val, ";") // parameters of the preference are ignored
		n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
		if err != nil || n < 0 {
			return PredictDefaultWait
		}
		if d := time.Duration(n) * time.Second; d < PredictMaxWait {
			return d
		}
		return PredictMaxWait
	}
	return PredictDefaultWait
}

// awaitFinal watches the job's record until it is final, wait runs out, the request
// ends (a client that goes away) or the service closes, and returns the latest record
// seen. Only the watch stops early: the job itself goes on.
func (s *Service) awaitFinal(ctx context.Context, rec *schemas.JobRecord, wait time.Duration) (*schemas.JobRecord, error) {
	if rec.Status.Final() || wait <= 0 {
		return rec, nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	updates, err := s.jobs.Watch(ctx, rec.ID)
	if err != nil {
		return rec, fmt.Errorf("watch job %s: %w", rec.ID, err)
	}
	latest := rec
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				return latest, nil // wait ran out or the client went away
			}
			latest = u
			if u.Status.Final() {
				return u, nil
			}
		case <-s.closing:
			return latest, nil
		}
	}
}

// inlineResults fills Data of each result of at most PredictInlineMaxBytes.
func (s *Service) inlineResults(ctx context.Context, rec *schemas.JobRecord, files []FileV2) error {
	for i := range files {
		ref, ok := rec.Results[files[i].Name]
		if !ok || ref.Size > PredictInlineMaxBytes {
			continue
		}
		data, err := s.readObject(ctx, ref.Key, PredictInlineMaxBytes)
		if err != nil {
			return err
		}
		files[i].Data = data
	}
	return nil
}

// readObject reads a stored object of at most limit bytes.
func (s *Service) readObject(ctx context.Context, key string, limit int64) ([]byte, error) {
	rc, _, err := s.blobs.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(data)) > limit {
		return nil, errors.New("read " + key + ": larger than its record says")
	}
	return data, nil
}
