package ingest_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
)

// batchForm is a multipart batch of n small PNGs (the i-th is (i+2)x(i+2)) and fields.
func batchForm(t *testing.T, n int, fields ...part) ([]byte, string) {
	t.Helper()
	var parts []part
	for i := range n {
		parts = append(parts, part{name: "image", filename: fmt.Sprintf("p%d.png", i), contentType: "image/png", body: encodePNG(t, gridImage(i+2, i+2))})
	}
	return form(t, append(parts, fields...)...)
}

func decodeBatch(t *testing.T, body []byte) ingest.BatchV2 {
	t.Helper()
	var b ingest.BatchV2
	require.NoError(t, json.Unmarshal(body, &b), "body: %s", body)
	return b
}

func TestBatchRunsOneJobPerImageOnTheBatchLane(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	p.runAll()
	p.openAll()

	body, ct := batchForm(t, 3, field("task", "remove-background"), field("params", `{"threshold":0.4}`))
	r := p.do(t, http.MethodPost, "/v2/batches", body, ct)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	b := decodeBatch(t, r.body)
	require.Equal(t, "/v2/batches/"+b.ID, r.location)
	require.Equal(t, 3, b.Total)
	require.Empty(t, b.Refused)
	require.Len(t, b.Jobs, 3)
	require.Equal(t, schemas.TaskRemoveBackground, b.Task)
	for _, j := range b.Jobs {
		require.Equal(t, b.ID, j.Batch)
		require.Equal(t, ingest.BatchTier, j.Tier, "batch jobs travel on the batch lane")
		require.Equal(t, 0.4, j.Params["threshold"], "one parameter set for every image")
	}
	for _, m := range p.requestMsgs(t) {
		require.Equal(t, schemas.RequestSubject(ingest.BatchTier, schemas.TaskRemoveBackground), m.Subject)
	}

	// The batch's view follows its jobs to the end.
	var got ingest.BatchV2
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		g := p.do(t, http.MethodGet, "/v2/batches/"+b.ID, nil, "")
		require.Equal(t, http.StatusOK, g.status, "body: %s", g.body)
		got = decodeBatch(t, g.body)
		if got.Status == "done" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, "done", got.Status)
	require.Equal(t, ingest.BatchCounts{Succeeded: 3}, got.Counts)
	require.Equal(t, 100, got.Percent)
	require.Equal(t, 3, got.Total)
	for _, j := range got.Jobs {
		require.Len(t, j.Results, 1)
	}

	t.Run("the results download as one ZIP from object storage", func(t *testing.T) {
		z := p.do(t, http.MethodGet, "/v2/batches/"+b.ID+"/results", nil, "")
		require.Equal(t, http.StatusOK, z.status, "body: %s", z.body)
		require.Equal(t, "application/zip", z.contentType)
		zr, err := zip.NewReader(bytes.NewReader(z.body), int64(len(z.body)))
		require.NoError(t, err)
		var names []string
		for _, f := range zr.File {
			names = append(names, f.Name)
			jobID, _, _ := strings.Cut(f.Name, "/")
			rc, err := f.Open()
			require.NoError(t, err)
			got, err := io.ReadAll(rc)
			require.NoError(t, err)
			src, _, err := p.blobs.Get(context.Background(), "results/local/"+jobID+"/cutout.png")
			require.NoError(t, err)
			want, err := io.ReadAll(src)
			require.NoError(t, src.Close())
			require.NoError(t, err)
			require.Equal(t, want, got, "%s must be the stored result", f.Name)
		}
		var want []string
		for _, j := range got.Jobs {
			want = append(want, j.ID+"/cutout.png")
		}
		require.Equal(t, want, names)
	})
	t.Run("another caller's or an unknown batch is not found", func(t *testing.T) {
		requireProblem(t, p.do(t, http.MethodGet, "/v2/batches/01jzzzzzzzzzzzzzzzzzzzzzzz", nil, ""), 404, "batch_not_found")
		requireProblem(t, p.do(t, http.MethodGet, "/v2/batches/not.a.token", nil, ""), 404, "batch_not_found")
	})
}

func TestBatchJSONNamesUploadsAndAdmitsWhatItCan(t *testing.T) {
	e := newEnv(t, ingest.Config{}) // no stages: the jobs stay queued
	ctx := context.Background()
	var keys []string
	for i := range 2 {
		data := encodePNG(t, gridImage(4+i, 4))
		key := fmt.Sprintf("uploads/local/local/u%d", i)
		_, err := e.blobs.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "image/png")
		require.NoError(t, err)
		keys = append(keys, key)
	}
	keys = append(keys[:1], "uploads/local/local/missing", keys[1])
	req := schemas.BatchRequest{Task: schemas.TaskRemoveBackground}
	for _, k := range keys {
		req.Images = append(req.Images, schemas.ImageInput{Key: k})
	}
	body, err := json.Marshal(req)
	require.NoError(t, err)

	r := e.do(t, http.MethodPost, "/v2/batches", body, "application/json")
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	b := decodeBatch(t, r.body)
	require.Equal(t, 2, b.Total, "partial admission: the readable images form the batch")
	require.Len(t, b.Refused, 1)
	require.Equal(t, 1, b.Refused[0].Index)
	require.Equal(t, "uploads/local/local/missing", b.Refused[0].Key)
	require.Equal(t, "missing_object", b.Refused[0].Problem.Code)
	require.Equal(t, "running", b.Status)
	require.Equal(t, ingest.BatchCounts{Queued: 2}, b.Counts)
	require.Len(t, e.requestMsgs(t), 2)

	g := e.do(t, http.MethodGet, "/v2/batches/"+b.ID, nil, "")
	require.Equal(t, http.StatusOK, g.status, "body: %s", g.body)
	got := decodeBatch(t, g.body)
	require.Equal(t, b.ID, got.ID)
	require.Equal(t, []string{b.Jobs[0].ID, b.Jobs[1].ID}, []string{got.Jobs[0].ID, got.Jobs[1].ID})
	require.Empty(t, got.Refused)
}

func TestBatchRefusesWhatNoJobCouldTake(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	noImage, noImageCT := batchForm(t, 0, field("task", "remove-background"))
	tooMany, tooManyCT := batchForm(t, ingest.MaxBatchImages+1, field("task", "remove-background"))
	noTask, noTaskCT := batchForm(t, 2)
	junk, junkCT := form(t, file([]byte("not an image at all")), file([]byte("nor this")), field("task", "remove-background"))
	inline, _ := json.Marshal(schemas.BatchRequest{Task: schemas.TaskRemoveBackground, Images: []schemas.ImageInput{{Data: []byte("x")}}})
	steps, stepsCT := batchForm(t, 2, field("task", "remove-background"), field("steps", "remove-background,upscale:scale=2"))
	style, styleCT := batchForm(t, 2, field("task", "style-transfer"), field("style", "a style image"))
	cases := []struct {
		name        string
		body        []byte
		contentType string
		status      int
		code        string
	}{
		{"a batch without images is refused", noImage, noImageCT, 422, "missing_field"},
		{"a batch over the image limit is refused", tooMany, tooManyCT, 413, "too_many_images"},
		{"a batch without a task answers the first image's problem", noTask, noTaskCT, 422, "missing_field"},
		{"a batch of unreadable images answers the first image's problem", junk, junkCT, 415, "not_an_image"},
		{"a JSON batch with inline data is refused", inline, "application/json", 422, "invalid_image"},
		{"another content type is refused", []byte("x"), "text/plain", 415, "unsupported_media_type"},
		{"a batch with steps is refused, not run as one step", steps, stepsCT, 422, "invalid_chain"},
		{"a batch with a style image is refused, not run without it", style, styleCT, 422, "invalid_style"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			requireProblem(t, e.do(t, http.MethodPost, "/v2/batches", c.body, c.contentType), c.status, c.code)
		})
	}
	e.requireNothingKept(t)
}

func TestBatchIsChargedOnceAndTheActiveCapAppliesPerJob(t *testing.T) {
	e := newSecureEnv(t) // carol: 2 requests per hour, 3 active jobs
	send := func() authResponse {
		body, ct := batchForm(t, 5, field("task", "remove-background"))
		return e.call(t, http.MethodPost, "/v2/batches", e.tokens["carol"], body, ct)
	}

	r := send()
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	b := decodeBatch(t, r.body)
	require.Equal(t, 3, b.Total, "the active-job cap admits three")
	require.Len(t, b.Refused, 2)
	for i, ref := range b.Refused {
		require.Equal(t, 3+i, ref.Index)
		require.Equal(t, "too_many_active_jobs", ref.Problem.Code)
	}

	// The first batch cost one request of two: a second is read, and refused because
	// every slot is taken.
	r = send()
	require.Equal(t, http.StatusTooManyRequests, r.status, string(r.body))
	require.Contains(t, string(r.body), "too_many_active_jobs")

	r = send()
	require.Equal(t, http.StatusTooManyRequests, r.status, string(r.body))
	require.Contains(t, string(r.body), "rate_limited")
	require.NotEmpty(t, r.header.Get("Retry-After"))

	g := e.call(t, http.MethodGet, "/v2/batches/"+b.ID, e.tokens["bob"], nil, "")
	require.Equal(t, http.StatusNotFound, g.status, "another user's batch is not found: %s", g.body)
	g = e.call(t, http.MethodGet, "/v2/batches/"+b.ID, e.tokens["carol"], nil, "")
	require.Equal(t, http.StatusOK, g.status, string(g.body))
}

func TestBatchProgressAndETAFollowItsJobs(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	p.runAll() // gates closed: the test lets the jobs through

	body, ct := batchForm(t, 2, field("task", "remove-background"))
	r := p.do(t, http.MethodPost, "/v2/batches", body, ct)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	b := decodeBatch(t, r.body)
	require.Nil(t, b.ETASeconds, "no progress yet, no estimate")

	get := func(until func(ingest.BatchV2) bool) ingest.BatchV2 {
		t.Helper()
		var got ingest.BatchV2
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			g := p.do(t, http.MethodGet, "/v2/batches/"+b.ID, nil, "")
			require.Equal(t, http.StatusOK, g.status, "body: %s", g.body)
			if got = decodeBatch(t, g.body); until(got) {
				return got
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("batch never reached the state: %+v", got)
		return got
	}

	for _, st := range []schemas.Stage{schemas.StagePreprocess, schemas.StageInference, schemas.StagePostprocess, schemas.StageStore} {
		p.release(st, 1) // one job through every stage
	}
	half := get(func(b ingest.BatchV2) bool { return b.Counts.Succeeded == 1 })
	require.Equal(t, "running", half.Status)
	require.GreaterOrEqual(t, half.Percent, 50)
	require.Less(t, half.Percent, 100)
	require.NotNil(t, half.ETASeconds, "progress gives an estimate")
	require.GreaterOrEqual(t, *half.ETASeconds, 0.0)

	p.openAll()
	done := get(func(b ingest.BatchV2) bool { return b.Status == "done" })
	require.Equal(t, ingest.BatchCounts{Succeeded: 2}, done.Counts)
	require.Equal(t, 100, done.Percent)
	require.Nil(t, done.ETASeconds)
}

func TestBatchCancelEndsItsUnfinishedJobs(t *testing.T) {
	e := newEnv(t, ingest.Config{}) // no stages: the jobs stay queued
	body, ct := batchForm(t, 2, field("task", "remove-background"))
	r := e.do(t, http.MethodPost, "/v2/batches", body, ct)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	b := decodeBatch(t, r.body)

	for _, name := range []string{"cancelling cancels every queued job", "cancelling again changes nothing"} {
		t.Run(name, func(t *testing.T) {
			d := e.do(t, http.MethodDelete, "/v2/batches/"+b.ID, nil, "")
			require.Equal(t, http.StatusOK, d.status, "body: %s", d.body)
			got := decodeBatch(t, d.body)
			require.Equal(t, ingest.BatchCounts{Cancelled: 2}, got.Counts)
			require.Equal(t, "done", got.Status)
			for _, j := range b.Jobs {
				rec, err := e.jobs.Get(context.Background(), j.ID)
				require.NoError(t, err)
				require.Equal(t, schemas.StatusCancelled, rec.Status)
			}
		})
	}
	requireProblem(t, e.do(t, http.MethodDelete, "/v2/batches/01jzzzzzzzzzzzzzzzzzzzzzzz", nil, ""), 404, "batch_not_found")
}
