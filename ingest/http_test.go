package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
)

// part is one multipart form part; a non-empty filename makes it a file part.
type part struct {
	name, filename, contentType string
	body                        []byte
}

func field(name, value string) part { return part{name: name, body: []byte(value)} }

// file is an image part whose name and declared type say JPEG whatever the bytes are:
// ingest must trust neither.
func file(data []byte) part {
	return part{name: "image", filename: "photo.jpg", contentType: "image/jpeg", body: data}
}

func form(t testing.TB, parts ...part) (body []byte, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		disp := fmt.Sprintf(`form-data; name=%q`, p.name)
		if p.filename != "" {
			disp += fmt.Sprintf(`; filename=%q`, p.filename)
		}
		h.Set("Content-Disposition", disp)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		require.NoError(t, err)
		_, err = w.Write(p.body)
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return buf.Bytes(), mw.FormDataContentType()
}

type response struct {
	status      int
	contentType string
	location    string
	body        []byte
}

func (e *env) do(t testing.TB, method, path string, body []byte, contentType string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.api.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := e.api.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), location: res.Header.Get("Location"), body: data}
}

func (e *env) submit(t testing.TB, parts ...part) response {
	t.Helper()
	body, ct := form(t, parts...)
	return e.do(t, http.MethodPost, "/v1/jobs", body, ct)
}

// requireProblem checks an RFC 9457 problem response and returns it.
func requireProblem(t *testing.T, r response, status int, code string) ingest.Problem {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.Equal(t, "application/problem+json", r.contentType)
	var p ingest.Problem
	require.NoError(t, json.Unmarshal(r.body, &p), "body: %s", r.body)
	require.Equal(t, status, p.Status)
	require.Equal(t, code, p.Code)
	require.Equal(t, "/docs/problems#"+code, p.Type)
	require.Equal(t, http.StatusText(status), p.Title)
	require.NotEmpty(t, p.Detail, "a problem must say what went wrong")
	return p
}

func fieldsOf(p ingest.Problem) []string {
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}

func TestPostJobAcceptsEachSupportedFormat(t *testing.T) {
	tests := []struct {
		name          string
		image         []byte
		contentType   string
		width, height int
		ext           string
	}{
		{"a PNG is queued", encodePNG(t, gridImage(7, 5)), "image/png", 7, 5, ".png"},
		{"a JPEG is queued", encodeJPEG(t, photoImage(64, 48)), "image/jpeg", 64, 48, ".jpg"},
		{"a lossless WebP is queued", losslessWebP(6, 4), "image/webp", 6, 4, ".webp"},
		// Ingest reads only the header (imageio.Inspect) so that the HTTP path never
		// spends CPU or memory decoding pixels; damage past the header is found by
		// preprocess, which fails the job with corrupt_image.
		{"a truncated JPEG with an intact header is queued", truncatedJPEG(t), "image/jpeg", 320, 240, ".jpg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, ingest.Config{})
			ctx := context.Background()

			r := e.submit(t, file(tt.image), field("task", "remove-background"))

			require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
			require.Equal(t, "application/json", r.contentType)
			var got ingest.JobResponse
			require.NoError(t, json.Unmarshal(r.body, &got))
			require.NotNil(t, got.JobRecord)
			id := got.ID
			require.NotEmpty(t, id)
			require.Equal(t, "/v1/jobs/"+id, r.location)
			require.Equal(t, "/v1/jobs/"+id, got.StatusURL)
			require.Equal(t, "/v1/jobs/"+id+"/events", got.EventsURL)
			require.Equal(t, queueAhead+1, got.QueuePosition)
			require.Equal(t, schemas.StatusQueued, got.Status)
			require.Equal(t, schemas.StageIngest, got.Stage)
			require.Equal(t, schemas.TierNormal, got.Tier)
			sum := sha256.Sum256(tt.image)
			require.Equal(t, hex.EncodeToString(sum[:]), got.Input.SHA256)
			require.Equal(t, int64(len(tt.image)), got.Input.Size)
			require.Equal(t, tt.contentType, got.Input.ContentType, "the type is sniffed, not taken from the part header")
			require.Equal(t, tt.width, got.Input.Width)
			require.Equal(t, tt.height, got.Input.Height)
			require.True(t, strings.HasSuffix(got.Input.Key, tt.ext), "input key %q", got.Input.Key)

			rec, err := e.jobs.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, schemas.StatusQueued, rec.Status)
			require.Equal(t, got.Input, rec.Input)

			info, err := e.blobs.Stat(ctx, got.Input.Key)
			require.NoError(t, err)
			require.Equal(t, got.Input.SHA256, info.SHA256, "the stored object is the uploaded bytes")

			msgs := e.requestMsgs(t)
			require.Len(t, msgs, 1, "exactly one request message")
			m := msgs[0]
			require.Equal(t, "studio.requests.normal.remove-background", m.Subject)
			require.Equal(t, id+":requested", m.Header.Get("Nats-Msg-Id"))
			var ev schemas.JobEvent
			require.NoError(t, json.Unmarshal(m.Data, &ev))
			require.Equal(t, schemas.SchemaJobRequested, ev.Schema)
			require.Equal(t, id, ev.JobID)
			require.Equal(t, got.Input, ev.Input)
			require.Equal(t, "isnet", ev.Model)
			require.Equal(t, "small", ev.ModelVersion)

			r = e.do(t, http.MethodGet, "/v1/jobs/"+id, nil, "")
			require.Equal(t, http.StatusOK, r.status)
			var again ingest.JobResponse
			require.NoError(t, json.Unmarshal(r.body, &again))
			require.Equal(t, id, again.ID)
			require.Equal(t, schemas.StatusQueued, again.Status)
			require.Equal(t, got.StatusURL, again.StatusURL)

			r = e.do(t, http.MethodGet, "/v1/jobs/"+id+"/input", nil, "")
			require.Equal(t, http.StatusOK, r.status)
			require.Equal(t, tt.contentType, r.contentType)
			require.Equal(t, tt.image, r.body)
		})
	}
}

func TestPostJobKeepsModelTierAndParams(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	r := e.submit(t, file(encodePNG(t, gridImage(3, 3))),
		field("task", "remove-background"), field("model", "isnet"), field("version", "small"),
		field("tier", "premium"), field("params", `{"feather": 2}`))
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	var got ingest.JobResponse
	require.NoError(t, json.Unmarshal(r.body, &got))
	require.Equal(t, schemas.TierPremium, got.Tier)
	require.Equal(t, map[string]any{"feather": 2.0}, got.Params)
	msgs := e.requestMsgs(t)
	require.Len(t, msgs, 1)
	require.Equal(t, "studio.requests.premium.remove-background", msgs[0].Subject)
}

func TestPostJobRefusesBadInput(t *testing.T) {
	const limit = 32 << 10
	e := newEnv(t, ingest.Config{Limits: imageio.Limits{MaxBytes: limit}})
	task := field("task", "remove-background")
	overLimit := encodePNG(t, photoImage(128, 128))
	require.Greater(t, len(overLimit), limit, "the over-limit image must be over the limit")

	multipartBody := func(parts ...part) func(t *testing.T) ([]byte, string) {
		return func(t *testing.T) ([]byte, string) { return form(t, parts...) }
	}
	tests := []struct {
		name   string
		body   func(t *testing.T) ([]byte, string)
		status int
		code   string
		field  string // named in errors; "" when the body as a whole is wrong
		detail string // the detail must contain this
	}{
		{"random bytes are not an image", multipartBody(file(randomBytes(4096)), task), 415, "not_an_image", "image", "JPEG, PNG or WebP"},
		{"an empty file is refused", multipartBody(file(nil), task), 400, "empty_image", "image", "empty"},
		{"a PNG claiming 100000x100000 pixels is too large", multipartBody(file(pngHeaderOnly(100000, 100000)), task), 413, "image_too_large", "image", "100000x100000"},
		{"a GIF renamed to .jpg is named as a GIF", multipartBody(file(encodeGIF(t)), task), 415, "unsupported_format", "image", "GIF"},
		{"a PDF renamed to .jpg is named as a PDF", multipartBody(file([]byte("%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")), task), 415, "unsupported_format", "image", "PDF"},
		{"a PNG with a damaged header is corrupt", multipartBody(file(damagedPNG()), task), 422, "corrupt_image", "image", "damaged"},
		{"an image over the byte limit is too large", multipartBody(file(overLimit), task), 413, "image_too_large", "image", "image is larger than the 32768 byte limit"},
		{"a body over the byte limit is cut off while reading", multipartBody(field("padding", strings.Repeat("x", 200<<10)), file(encodePNG(t, gridImage(2, 2))), task), 413, "image_too_large", "image", "upload is larger than the 32768 byte limit"},
		{"a form without an image part is incomplete", multipartBody(task), 422, "missing_field", "image", "image part is required"},
		{"a form without a task is incomplete", multipartBody(file(encodePNG(t, gridImage(2, 2)))), 422, "missing_field", "task", "task"},
		{"a task no model serves is unknown", multipartBody(file(encodePNG(t, gridImage(2, 2))), field("task", "paint-a-cat")), 422, "unknown_model", "task", "paint-a-cat"},
		{"a model version the catalog lacks is unknown", multipartBody(file(encodePNG(t, gridImage(2, 2))), task, field("version", "huge")), 422, "unknown_model", "task", "huge"},
		{"a tier that does not exist is refused", multipartBody(file(encodePNG(t, gridImage(2, 2))), task, field("tier", "gold")), 422, "invalid_tier", "tier", "gold"},
		{"params that are not JSON are refused", multipartBody(file(encodePNG(t, gridImage(2, 2))), task, field("params", "{feather: 2")), 422, "invalid_params", "params", "JSON object"},
		{"params that are a JSON array are refused", multipartBody(file(encodePNG(t, gridImage(2, 2))), task, field("params", "[1, 2]")), 422, "invalid_params", "params", "JSON object"},
		// JSON is a second request format since v1 gained it; without an image it is
		// incomplete (json_test.go covers JSON requests).
		{"a JSON body without an image is incomplete", func(*testing.T) ([]byte, string) {
			return []byte(`{"task": "remove-background"}`), "application/json"
		}, 422, "missing_field", "image", "image"},
		{"a body of another type is refused", func(*testing.T) ([]byte, string) {
			return []byte("task=remove-background"), "application/x-www-form-urlencoded"
		}, 415, "unsupported_media_type", "Content-Type", "multipart/form-data"},
		{"a body without a content type is not multipart", func(*testing.T) ([]byte, string) {
			return []byte("task=remove-background"), ""
		}, 415, "unsupported_media_type", "Content-Type", "multipart/form-data"},
		{"a multipart type without a boundary is malformed", func(t *testing.T) ([]byte, string) {
			body, _ := form(t, file(encodePNG(t, gridImage(2, 2))), task)
			return body, "multipart/form-data"
		}, 400, "bad_multipart", "", "boundary"},
		{"a multipart body cut off inside a part is malformed", func(t *testing.T) ([]byte, string) {
			body, ct := form(t, task, file(encodePNG(t, gridImage(2, 2))))
			return body[:len(body)-20], ct
		}, 400, "bad_multipart", "", "image part"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := tt.body(t)
			r := e.do(t, http.MethodPost, "/v1/jobs", body, ct)
			p := requireProblem(t, r, tt.status, tt.code)
			require.Equal(t, "/v1/jobs", p.Instance)
			require.Contains(t, p.Detail, tt.detail)
			if tt.field == "" {
				require.Empty(t, p.Errors)
			} else {
				require.Equal(t, []string{tt.field}, fieldsOf(p))
			}
			e.requireNothingKept(t)
		})
	}
}

// A pixel bomb must be refused from its header: decoding 100000x100000 RGBA would need
// 40 GB, so any pixel allocation shows up far above the bound.
func TestPostJobRefusesAPixelBombWithoutAllocatingPixels(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	body, ct := form(t, file(pngHeaderOnly(100000, 100000)), field("task", "remove-background"))
	e.do(t, http.MethodGet, "/health/live", nil, "") // warm the connection pool

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := e.do(t, http.MethodPost, "/v1/jobs", body, ct)
	runtime.ReadMemStats(&after)

	requireProblem(t, r, http.StatusRequestEntityTooLarge, "image_too_large")
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("handling the request allocated %d bytes", allocated)
	require.Less(t, allocated, uint64(16<<20), "handling the request allocated %d bytes", allocated)
	e.requireNothingKept(t)
}

func TestGetJobReportsMissingThings(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	r := e.submit(t, file(encodePNG(t, gridImage(2, 2))), field("task", "remove-background"))
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	var job ingest.JobResponse
	require.NoError(t, json.Unmarshal(r.body, &job))

	tests := []struct {
		name   string
		path   string
		code   string
		detail string
	}{
		{"an unknown job id is not found", "/v1/jobs/01hzzzzzzzzzzzzzzzzzzzzzzz", "job_not_found", "01hzzzzzzzzzzzzzzzzzzzzzzz"},
		{"an id that cannot be a key is not found", "/v1/jobs/bad!id", "job_not_found", "bad!id"},
		{"results of an unknown job are not found", "/v1/jobs/01hzzzzzzzzzzzzzzzzzzzzzzz/results/cutout.png", "job_not_found", "01hzzzzzzzzzzzzzzzzzzzzzzz"},
		{"the input of an unknown job is not found", "/v1/jobs/01hzzzzzzzzzzzzzzzzzzzzzzz/input", "job_not_found", "01hzzzzzzzzzzzzzzzzzzzzzzz"},
		{"a result a queued job does not have yet is not found", "/v1/jobs/" + job.ID + "/results/cutout.png", "no_such_result", "status queued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodGet, tt.path, nil, "")
			p := requireProblem(t, r, http.StatusNotFound, tt.code)
			require.Contains(t, p.Detail, tt.detail)
		})
	}
}

func TestGetJobInputReportsAGoneObject(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	r := e.submit(t, file(encodePNG(t, gridImage(2, 2))), field("task", "remove-background"))
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	var job ingest.JobResponse
	require.NoError(t, json.Unmarshal(r.body, &job))
	require.NoError(t, e.blobs.Delete(context.Background(), job.Input.Key))

	r = e.do(t, http.MethodGet, "/v1/jobs/"+job.ID+"/input", nil, "")
	requireProblem(t, r, http.StatusNotFound, "object_gone")
}

func TestHealthEndpointsReportReadiness(t *testing.T) {
	cat := models.NewCatalog()
	require.NoError(t, cat.Add(models.ISNet("small", "/nonexistent")))
	tests := []struct {
		name   string
		path   string
		ready  func(context.Context) error
		status int
		want   string
	}{
		{"liveness ignores readiness", "/health/live", func(context.Context) error { return errors.New("NATS is not connected") }, 200, `"status": "ok"`},
		{"readiness is ok when the pipeline is", "/health/ready", func(context.Context) error { return nil }, 200, `"status": "ok"`},
		{"readiness names why the pipeline is not ready", "/health/ready", func(context.Context) error { return errors.New("NATS is not connected") }, 503, "NATS is not connected"},
		{"the bare health path is readiness", "/health", func(context.Context) error { return errors.New("stream REQUESTS unavailable") }, 503, "stream REQUESTS unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := ingest.NewService(ingest.Config{}, nil, nil, nil, cat, nil, tt.ready, quietLog())
			api := httptest.NewServer(svc.Handler())
			t.Cleanup(api.Close)
			e := &env{api: api}
			r := e.do(t, http.MethodGet, tt.path, nil, "")
			require.Equal(t, tt.status, r.status)
			require.Equal(t, "application/json", r.contentType)
			require.Contains(t, string(r.body), tt.want)
		})
	}
}
