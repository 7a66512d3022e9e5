package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
)

// exchange is one HTTP answer with its headers.
type exchange struct {
	status int
	header http.Header
	body   []byte
}

// send makes one request with extra headers and reads the whole answer.
func (e *env) send(t *testing.T, client *http.Client, method, path string, header http.Header, body []byte, contentType string) (exchange, error) {
	t.Helper()
	req, err := http.NewRequest(method, e.api.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := client.Do(req)
	if err != nil {
		return exchange{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return exchange{}, err
	}
	return exchange{status: res.StatusCode, header: res.Header, body: data}, nil
}

// predict posts a small PNG for remove-background to path with the Prefer header.
func (e *env) predict(t *testing.T, path, prefer string) exchange {
	t.Helper()
	body, ct := form(t, file(encodePNG(t, gridImage(3, 3))), field("task", "remove-background"))
	h := http.Header{}
	if prefer != "" {
		h.Set("Prefer", prefer)
	}
	x, err := e.send(t, e.api.Client(), http.MethodPost, path, h, body, ct)
	require.NoError(t, err)
	return x
}

func TestPredictAnswersTheFinishedJobWithItsResults(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	p.runAll()
	p.openAll()

	t.Run("v2 with inline results carries the stored bytes", func(t *testing.T) {
		x := p.predict(t, "/v2/predict?inline=true", "wait=20")
		require.Equal(t, http.StatusOK, x.status, "body: %s", x.body)
		require.Equal(t, "wait=20", x.header.Get("Preference-Applied"))
		require.Equal(t, "v2", x.header.Get("Studio-Api-Version"))
		require.Empty(t, x.header.Get("Deprecation"))
		var job ingest.JobV2
		require.NoError(t, json.Unmarshal(x.body, &job))
		require.Equal(t, schemas.StatusSucceeded, job.Status)
		require.Equal(t, 100, job.Percent)
		require.Len(t, job.Results, 1)
		res := job.Results[0]
		require.Equal(t, "cutout", res.Name)
		rc, _, err := p.blobs.Get(context.Background(), "results/local/"+job.ID+"/cutout.png")
		require.NoError(t, err)
		stored, err := io.ReadAll(rc)
		require.NoError(t, rc.Close())
		require.NoError(t, err)
		require.Equal(t, stored, res.Data, "inline data must be the stored result")
		require.Equal(t, "/v1/jobs/"+job.ID+"/results/cutout.png", res.URL)
	})
	t.Run("v2 without inline gives links only", func(t *testing.T) {
		x := p.predict(t, "/v2/predict", "")
		require.Equal(t, http.StatusOK, x.status, "body: %s", x.body)
		require.Equal(t, "wait=30", x.header.Get("Preference-Applied"), "the documented default")
		var job ingest.JobV2
		require.NoError(t, json.Unmarshal(x.body, &job))
		require.Equal(t, schemas.StatusSucceeded, job.Status)
		require.Len(t, job.Results, 1)
		require.Nil(t, job.Results[0].Data)
		require.NotEmpty(t, job.Results[0].URL)
	})
	t.Run("v1 answers the v1 job with downloads and deprecation headers", func(t *testing.T) {
		x := p.predict(t, "/v1/predict", "wait=20")
		require.Equal(t, http.StatusOK, x.status, "body: %s", x.body)
		require.Regexp(t, `^@\d+$`, x.header.Get("Deprecation"))
		require.NotEmpty(t, x.header.Get("Sunset"))
		require.Contains(t, x.header.Values("Link"), `</v2/predict>; rel="successor-version"`)
		var job ingest.JobResponse
		require.NoError(t, json.Unmarshal(x.body, &job))
		require.Equal(t, schemas.StatusSucceeded, job.Status)
		require.Equal(t, "/v1/jobs/"+job.ID+"/results/cutout.png", job.Downloads["cutout"])
	})
	t.Run("latest follows v2", func(t *testing.T) {
		x := p.predict(t, "/latest/predict", "wait=20")
		require.Equal(t, http.StatusOK, x.status, "body: %s", x.body)
		require.Equal(t, "v2", x.header.Get("Studio-Api-Version"))
		var job ingest.JobV2
		require.NoError(t, json.Unmarshal(x.body, &job))
		require.Equal(t, schemas.StatusSucceeded, job.Status)
	})
}

func TestPredictReadsTheWaitPreference(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	p.runAll()
	p.openAll()
	cases := []struct {
		name, prefer, applied string
	}{
		{"no preference waits the default", "", "wait=30"},
		{"a wait within the maximum applies", "wait=7", "wait=7"},
		{"a wait among other preferences applies", "respond-async, wait=9", "wait=9"},
		{"a wait over the maximum is cut to it", "wait=600", "wait=60"},
		{"a malformed wait waits the default", "wait=soon", "wait=30"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := p.predict(t, "/v2/predict", c.prefer)
			require.Equal(t, http.StatusOK, x.status, "body: %s", x.body)
			require.Equal(t, c.applied, x.header.Get("Preference-Applied"))
		})
	}
}

func TestPredictAnswersTheQueuedJobWhenTheWaitRunsOut(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	p.runAll() // gates closed: the job cannot finish within the wait

	start := time.Now()
	x := p.predict(t, "/v2/predict", "wait=1")
	require.Equal(t, http.StatusAccepted, x.status, "body: %s", x.body)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "it must wait as long as asked")
	var job ingest.JobV2
	require.NoError(t, json.Unmarshal(x.body, &job))
	require.False(t, job.Status.Final())
	require.Equal(t, "/v2/jobs/"+job.ID, x.header.Get("Location"), "answered as POST /jobs answers")
	require.Equal(t, "/v2/jobs/"+job.ID, job.Links.Self)

	p.openAll()
	p.waitStatus(t, job.ID, schemas.StatusSucceeded) // nothing is lost

	t.Run("wait=0 answers at once", func(t *testing.T) {
		q := newPipeline(t, ingest.Config{}) // not running: the job stays queued
		x := q.predict(t, "/v2/predict", "wait=0")
		require.Equal(t, http.StatusAccepted, x.status, "body: %s", x.body)
		require.Equal(t, "wait=0", x.header.Get("Preference-Applied"))
	})
}

func TestPredictAnswersAFailedJobWithItsError(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	p.failing.Store(true)
	p.runAll()
	p.openAll()

	x := p.predict(t, "/v2/predict", "wait=20")
	require.Equal(t, http.StatusOK, x.status, "a final job answers 200 whatever its status; body: %s", x.body)
	var job ingest.JobV2
	require.NoError(t, json.Unmarshal(x.body, &job))
	require.Equal(t, schemas.StatusFailed, job.Status)
	require.NotNil(t, job.Error)
	require.Equal(t, "test_failure", job.Error.Code)
	require.Equal(t, schemas.StageInference, job.Error.Stage)
	require.Empty(t, job.Results)
}

func TestPredictClientThatGoesAwayDoesNotCancelTheJob(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	p.runAll() // gates closed

	body, ct := form(t, file(encodePNG(t, gridImage(3, 3))), field("task", "remove-background"))
	impatient := &http.Client{Timeout: 500 * time.Millisecond}
	_, err := p.send(t, impatient, http.MethodPost, "/v2/predict", http.Header{"Prefer": {"wait=30"}}, body, ct)
	var ue interface{ Timeout() bool }
	require.True(t, errors.As(err, &ue) && ue.Timeout(), "the client gives up first: %v", err)

	ids, err := p.index.List(context.Background(), "local", "local")
	require.NoError(t, err)
	require.Len(t, ids, 1, "the job was admitted")
	p.openAll()
	rec := p.waitStatus(t, ids[0], schemas.StatusSucceeded)
	require.NotEmpty(t, rec.Results)
}

func TestPredictRefusesWhatJobsRefuses(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	body, ct := form(t, file(encodePNG(t, gridImage(3, 3))))
	x, err := e.send(t, e.api.Client(), http.MethodPost, "/v2/predict", nil, body, ct)
	require.NoError(t, err)
	requireProblem(t, response{status: x.status, contentType: x.header.Get("Content-Type"), body: x.body}, 422, "missing_field")
	e.requireNothingKept(t)
}

func TestPredictAndBatchesAreInTheOpenAPIDocument(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	r := e.do(t, http.MethodGet, "/openapi.json", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Deprecated  bool   `json:"deprecated"`
			Parameters  []struct {
				Name string `json:"name"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(r.body, &doc))
	cases := []struct {
		path, method, id string
		deprecated       bool
		params           []string
	}{
		{"/v1/predict", "post", "v1-predict", true, []string{"Idempotency-Key", "traceparent", "Prefer"}},
		{"/v2/predict", "post", "v2-predict", false, []string{"Idempotency-Key", "traceparent", "Prefer", "inline"}},
		{"/v2/batches", "post", "v2-submit-batch", false, nil},
		{"/v2/batches/{id}", "get", "v2-get-batch", false, []string{"id"}},
		{"/v2/batches/{id}", "delete", "v2-cancel-batch", false, []string{"id"}},
		{"/v2/batches/{id}/results", "get", "v2-get-batch-results", false, []string{"id"}},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path+" is documented", func(t *testing.T) {
			op, ok := doc.Paths[c.path][c.method]
			require.True(t, ok, "missing from the document")
			require.Equal(t, c.id, op.OperationID)
			require.Equal(t, c.deprecated, op.Deprecated)
			var names []string
			for _, p := range op.Parameters {
				names = append(names, p.Name)
			}
			require.ElementsMatch(t, c.params, names)
		})
	}
	require.NotContains(t, doc.Paths, "/latest/predict", "aliases are left out of the document")
}
