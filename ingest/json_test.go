package ingest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
)

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestPostJobAcceptsJSONWithInlineImageOrUploadedKey(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	img := encodePNG(t, gridImage(5, 4))

	r := e.do(t, http.MethodPost, "/v1/jobs", jsonBody(t, map[string]any{
		"task": "remove-background", "tier": "free", "params": map[string]any{"threshold": 0.5, "feather": 4},
		"image": map[string]any{"data": img},
	}), "application/json")
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	var job ingest.JobResponse
	require.NoError(t, json.Unmarshal(r.body, &job))
	require.Equal(t, schemas.TierFree, job.Tier)
	require.Equal(t, 5, job.Input.Width)
	require.Equal(t, map[string]any{"threshold": 0.5, "feather": 4.0}, job.Params)

	// The presigned flow: ask for a URL, PUT the bytes, reference the key.
	r = e.do(t, http.MethodPost, "/v1/uploads", nil, "")
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	var ticket ingest.UploadTicket
	require.NoError(t, json.Unmarshal(r.body, &ticket))
	require.True(t, strings.HasPrefix(ticket.Key, "uploads/local/"), ticket.Key)
	require.Equal(t, http.MethodPut, ticket.Method)
	require.Equal(t, int64(imageio.DefaultMaxBytes), ticket.MaxBytes, "10 MB by default")
	big := encodeJPEG(t, photoImage(640, 480))
	r = e.do(t, http.MethodPut, ticket.UploadURL, big, "application/octet-stream")
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	var obj ingest.UploadedObject
	require.NoError(t, json.Unmarshal(r.body, &obj))
	require.Equal(t, ticket.Key, obj.Key)
	require.Equal(t, "image/jpeg", obj.ContentType)
	require.Equal(t, 640, obj.Width)

	r = e.do(t, http.MethodPost, "/v2/jobs", jsonBody(t, map[string]any{"task": "remove-background", "image": map[string]any{"key": ticket.Key}}), "application/json")
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	var v2 ingest.JobV2
	require.NoError(t, json.Unmarshal(r.body, &v2))
	require.Equal(t, 640, v2.Input.Width)
	require.Equal(t, "/v2/jobs/"+v2.ID, r.location)
	require.Len(t, e.requestMsgs(t), 2)
}

func TestPostJobJSONRefusesBadRequests(t *testing.T) {
	e := newEnv(t, ingest.Config{Limits: imageio.Limits{MaxBytes: 64 << 10}})
	img := encodePNG(t, gridImage(2, 2))
	ok := func(extra map[string]any) []byte {
		m := map[string]any{"task": "remove-background", "image": map[string]any{"data": img}}
		for k, v := range extra {
			m[k] = v
		}
		return jsonBody(t, m)
	}
	tests := []struct {
		name       string
		body       []byte
		status     int
		code       string
		field      string
		constraint string
	}{
		{"bad JSON is refused with its offset", []byte(`{"task": "remove-background", "image": {`), 400, "bad_json", "", ""},
		{"an empty body is refused", nil, 400, "bad_json", "", ""},
		{"a missing image is named", jsonBody(t, map[string]any{"task": "remove-background"}), 422, "missing_field", "image", "required"},
		{"a missing task is named", jsonBody(t, map[string]any{"image": map[string]any{"data": img}}), 422, "missing_field", "task", "required"},
		{"an out-of-range parameter names its maximum", ok(map[string]any{"params": map[string]any{"threshold": 1.5}}), 422, "invalid_params", "params.threshold", "maximum"},
		{"a negative parameter names its minimum", ok(map[string]any{"params": map[string]any{"feather": -1}}), 422, "invalid_params", "params.feather", "minimum"},
		{"a fractional integer parameter names its type", ok(map[string]any{"params": map[string]any{"feather": 1.5}}), 422, "invalid_params", "params.feather", "type"},
		{"an unknown parameter is refused", ok(map[string]any{"params": map[string]any{"radius": 2}}), 422, "invalid_params", "params.radius", "additionalProperties"},
		{"an unknown output colour space is refused", ok(map[string]any{"params": map[string]any{"color": "cmyk"}}), 422, "invalid_params", "params.color", "enum"},
		{"an unknown output format is refused", ok(map[string]any{"params": map[string]any{"format": "gif"}}), 422, "invalid_params", "params.format", "enum"},
		{"a quality with png is refused", ok(map[string]any{"params": map[string]any{"quality": 80}}), 422, "invalid_params", "params.quality", "dependentSchemas"},
		{"a quality over 100 is refused", ok(map[string]any{"params": map[string]any{"format": "jpeg", "quality": 101}}), 422, "invalid_params", "params.quality", "maximum"},
		{"a background that is no #rrggbb is refused", ok(map[string]any{"params": map[string]any{"format": "jpeg", "background": "white"}}), 422, "invalid_params", "params.background", "pattern"},
		{"an unknown task is refused", ok(map[string]any{"task": "paint-a-cat"}), 422, "unknown_model", "task", "enum"},
		{"a known task no model serves is refused", ok(map[string]any{"task": "ocr"}), 422, "unknown_model", "task", "enum"},
		{"an unknown tier is refused", ok(map[string]any{"tier": "gold"}), 422, "invalid_tier", "tier", "enum"},
		{"an unknown field is refused", ok(map[string]any{"priority": 1}), 422, "invalid_field", "priority", "additionalProperties"},
		{"both key and data is refused", ok(map[string]any{"image": map[string]any{"data": img, "key": "uploads/local/x"}}), 422, "invalid_image", "image", "oneOf"},
		{"bad base64 is refused", []byte(`{"task":"remove-background","image":{"data":"***"}}`), 422, "invalid_image", "image.data", "contentEncoding"},
		{"an image that is not an object is judged as sent", ok(map[string]any{"image": "AA=="}), 422, "invalid_image", "image", "type"},
		{"a callback that is not http is refused", ok(map[string]any{"callback_url": "ftp://example.test/x"}), 422, "invalid_callback_url", "callback_url", "pattern"},
		{"random bytes are not an image", ok(map[string]any{"image": map[string]any{"data": randomBytes(2048)}}), 415, "not_an_image", "image.data", "format"},
		{"a GIF is named", ok(map[string]any{"image": map[string]any{"data": encodeGIF(t)}}), 415, "unsupported_format", "image.data", "format"},
		{"a pixel bomb is refused from its header", ok(map[string]any{"image": map[string]any{"data": pngHeaderOnly(100000, 100000)}}), 413, "image_too_large", "image.data", "maxPixels"},
		{"an inline image over the inline limit is refused", ok(map[string]any{"image": map[string]any{"data": randomBytes(schemas.MaxInlineImageBytes + 1)}}), 413, "image_too_large", "image.data", "maxBytes"},
		{"an empty inline image is refused", ok(map[string]any{"image": map[string]any{"data": []byte{}}}), 422, "invalid_image", "image.data", "minLength"},
		{"a key outside the caller's uploads is refused", ok(map[string]any{"image": map[string]any{"key": "inputs/local/x/original.png"}}), 422, "invalid_image", "image.key", "pattern"},
		{"a key of a missing object is refused", ok(map[string]any{"image": map[string]any{"key": "uploads/local/none"}}), 422, "missing_object", "image.key", "exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/v1/jobs", tt.body, "application/json")
			p := requireProblem(t, r, tt.status, tt.code)
			if tt.field != "" {
				found := false
				for _, f := range p.Errors {
					if f.Field == tt.field {
						found = true
						require.Equal(t, tt.constraint, f.Constraint, "constraint of %s in %s", tt.field, r.body)
						require.NotEmpty(t, f.Message)
					}
				}
				require.True(t, found, "no error names %s: %s", tt.field, r.body)
			}
			e.requireNothingKept(t)
		})
	}
}

func TestPresignedUploadsAreCheckedOnTheWayIn(t *testing.T) {
	const secret = "upload-secret"
	e := newEnv(t, ingest.Config{UploadSecret: secret, Limits: imageio.Limits{MaxBytes: 32 << 10}})
	ticket := func() ingest.UploadTicket {
		r := e.do(t, http.MethodPost, "/v1/uploads", nil, "")
		require.Equal(t, http.StatusCreated, r.status)
		var tk ingest.UploadTicket
		require.NoError(t, json.Unmarshal(r.body, &tk))
		return tk
	}
	png := encodePNG(t, gridImage(3, 3))

	tk := ticket()
	requireProblem(t, e.do(t, http.MethodPut, tk.UploadURL+"0", png, ""), http.StatusForbidden, "invalid_signature")
	requireProblem(t, e.do(t, http.MethodPut, strings.Replace(tk.UploadURL, "/v1/uploads/local/", "/v1/uploads/other/", 1), png, ""), http.StatusForbidden, "invalid_signature")
	requireProblem(t, e.do(t, http.MethodPut, tk.UploadURL, encodeGIF(t), ""), http.StatusUnsupportedMediaType, "unsupported_format")
	requireProblem(t, e.do(t, http.MethodPut, tk.UploadURL, pngHeaderOnly(100000, 100000), ""), http.StatusRequestEntityTooLarge, "image_too_large")
	requireProblem(t, e.do(t, http.MethodPut, tk.UploadURL, encodePNG(t, photoImage(128, 128)), ""), http.StatusRequestEntityTooLarge, "image_too_large")
	require.Equal(t, http.StatusCreated, e.do(t, http.MethodPut, tk.UploadURL, png, "").status)
	requireProblem(t, e.do(t, http.MethodPut, tk.UploadURL, png, ""), http.StatusConflict, "upload_exists")

	// A URL this server signed that has expired.
	id := NewIDForTest()
	key := "uploads/local/local/" + id
	past := time.Now().Add(-time.Minute).Unix()
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "PUT\n%s\n%d", key, past)
	url := fmt.Sprintf("/v1/uploads/local/local/%s?expires=%d&signature=%s", id, past, hex.EncodeToString(m.Sum(nil)))
	requireProblem(t, e.do(t, http.MethodPut, url, png, ""), http.StatusGone, "upload_url_expired")
	// Missing query parameters are named.
	p := requireProblem(t, e.do(t, http.MethodPut, "/v1/uploads/local/local/"+id, png, ""), http.StatusUnprocessableEntity, "invalid_request")
	require.Contains(t, fieldsOf(p), "expires")
}

// NewIDForTest returns a fresh upload id.
func NewIDForTest() string { return ingest.NewJobID() }

func TestIdempotencyKeyReturnsTheSameJobAndRefusesADifferentBody(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	img := encodePNG(t, gridImage(4, 4))
	post := func(key string, parts ...part) response {
		body, ct := form(t, parts...)
		req, err := http.NewRequest(http.MethodPost, e.api.URL+"/v1/jobs", strings.NewReader(string(body)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Idempotency-Key", key)
		res, err := e.api.Client().Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		data, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return response{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), location: res.Header.Get("Idempotent-Replayed"), body: data}
	}
	task := field("task", "remove-background")
	first := post("order-42", file(img), task)
	require.Equal(t, http.StatusAccepted, first.status, "body: %s", first.body)
	again := post("order-42", task, file(img)) // same request, parts reordered, new boundary
	require.Equal(t, http.StatusAccepted, again.status, "body: %s", again.body)
	require.Equal(t, "true", again.location, "Idempotent-Replayed")
	var a, b ingest.JobResponse
	require.NoError(t, json.Unmarshal(first.body, &a))
	require.NoError(t, json.Unmarshal(again.body, &b))
	require.Equal(t, a.ID, b.ID, "the same key and body return the same job")

	msgs := e.requestMsgs(t)
	require.Len(t, msgs, 1, "never a second job")
	require.True(t, strings.HasPrefix(msgs[0].Header.Get("Nats-Msg-Id"), "idem:local."), "the key is carried into Nats-Msg-Id: %q", msgs[0].Header.Get("Nats-Msg-Id"))

	p := requireProblem(t, post("order-42", file(img), task, field("params", `{"feather": 1}`)), http.StatusConflict, "idempotency_conflict")
	require.Equal(t, []string{"Idempotency-Key"}, fieldsOf(p))
	require.Contains(t, p.Detail, a.ID)
	requireProblem(t, post(strings.Repeat("k", 256), file(img), task), http.StatusBadRequest, "invalid_idempotency_key")

	// A JSON request may carry its key in the body instead.
	jsonReq := jsonBody(t, map[string]any{"task": "remove-background", "idempotency_key": "order-44", "image": map[string]any{"data": img}})
	r1 := e.do(t, http.MethodPost, "/v2/jobs", jsonReq, "application/json")
	r2 := e.do(t, http.MethodPost, "/v2/jobs", jsonReq, "application/json")
	require.Equal(t, http.StatusAccepted, r1.status, "body: %s", r1.body)
	var j1, j2 ingest.JobV2
	require.NoError(t, json.Unmarshal(r1.body, &j1))
	require.NoError(t, json.Unmarshal(r2.body, &j2))
	require.Equal(t, j1.ID, j2.ID)
	require.Len(t, e.requestMsgs(t), 2)

	// Racing retries of one request share one job.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := post("order-43", file(img), task)
			if r.status != http.StatusAccepted {
				t.Errorf("racing request %d: %d %s", i, r.status, r.body)
				return
			}
			var j ingest.JobResponse
			_ = json.Unmarshal(r.body, &j)
			ids[i] = j.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id, "racing requests with one key got different jobs: %v", ids)
	}
	require.Len(t, e.requestMsgs(t), 3)
}

func TestJobListPagesThroughTheCallersJobsNewestFirst(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	var ids []string
	for range 5 {
		ids = append(ids, e.submitPNG(t).ID)
	}
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		require.Less(t, page, 5)
		r := e.do(t, http.MethodGet, "/v1/jobs?limit=2&cursor="+cursor, nil, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		var list ingest.JobList
		require.NoError(t, json.Unmarshal(r.body, &list))
		require.LessOrEqual(t, len(list.Jobs), 2)
		for _, j := range list.Jobs {
			got = append(got, j.ID)
		}
		if list.NextCursor == "" {
			break
		}
		cursor = list.NextCursor
	}
	want := append([]string(nil), ids...)
	for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
		want[i], want[j] = want[j], want[i]
	}
	require.Equal(t, want, got, "newest first, each job once")

	r := e.do(t, http.MethodGet, "/v2/jobs?limit=3", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	var v2 ingest.JobListV2
	require.NoError(t, json.Unmarshal(r.body, &v2))
	require.Len(t, v2.Items, 3)
	require.Equal(t, want[0], v2.Items[0].ID)
	require.Equal(t, want[2], v2.NextCursor)

	p := requireProblem(t, e.do(t, http.MethodGet, "/v1/jobs?limit=1000", nil, ""), http.StatusUnprocessableEntity, "invalid_request")
	require.Equal(t, []string{"limit"}, fieldsOf(p))
	require.Equal(t, "maximum", p.Errors[0].Constraint)
}

func TestVersionsDeprecationAndLatest(t *testing.T) {
	e := newEnv(t, ingest.Config{V1Sunset: time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)})
	job := e.submitPNG(t)

	get := func(path string) *http.Response {
		res, err := e.api.Client().Get(e.api.URL + path)
		require.NoError(t, err)
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	v1 := get("/v1/jobs/" + job.ID)
	require.Equal(t, http.StatusOK, v1.StatusCode)
	require.Regexp(t, `^@\d+$`, v1.Header.Get("Deprecation"), "RFC 9745 Deprecation")
	require.Equal(t, "Wed, 30 Jun 2027 00:00:00 GMT", v1.Header.Get("Sunset"))
	links := strings.Join(v1.Header.Values("Link"), ", ")
	require.Contains(t, links, `</docs/migrations/v1-to-v2>; rel="deprecation"`)
	require.Contains(t, links, `</v2/jobs/`+job.ID+`>; rel="successor-version"`)
	require.Equal(t, "v1", v1.Header.Get("Studio-Api-Version"))

	v2 := get("/v2/jobs/" + job.ID)
	require.Equal(t, http.StatusOK, v2.StatusCode)
	require.Empty(t, v2.Header.Get("Deprecation"))
	require.Empty(t, v2.Header.Get("Sunset"))
	var body map[string]any
	require.NoError(t, json.NewDecoder(v2.Body).Decode(&body))
	require.Contains(t, body, "links")
	require.Contains(t, body, "timings")
	require.NotContains(t, body, "downloads", "v2 has another shape")
	require.Equal(t, map[string]any{"position": 3.0}, body["queue"])

	latest := get("/latest/jobs/" + job.ID)
	require.Equal(t, http.StatusOK, latest.StatusCode)
	require.Equal(t, "v2", latest.Header.Get("Studio-Api-Version"), "latest follows the newest version")
	require.Empty(t, latest.Header.Get("Deprecation"))
	models := get("/latest/models")
	require.Equal(t, http.StatusOK, models.StatusCode)
	require.Equal(t, "v1", models.Header.Get("Studio-Api-Version"), "a route without v2 stays on v1")
	require.Equal(t, http.StatusNotFound, get("/v2/models").StatusCode, "v2 exists only for what changed shape")

	// The migration note the Link points at exists.
	note := get("/docs/migrations/v1-to-v2")
	require.Equal(t, http.StatusOK, note.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", note.Header.Get("Content-Type"))
}

func TestOpenAPIIsGeneratedAndDocsNeedNoCDN(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	r := e.do(t, http.MethodGet, "/openapi.json", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
		Comps   struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(r.body, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "OpenAPI 3: %s", doc.OpenAPI)
	for _, route := range []string{"/v1/jobs", "/v2/jobs", "/v1/jobs/{id}", "/v2/jobs/{id}", "/v1/jobs/{id}/events", "/v1/uploads", "/v1/feedback", "/v1/tasks", "/health/ready"} {
		require.Contains(t, doc.Paths, route)
	}
	require.Equal(t, true, doc.Paths["/v1/jobs/{id}"]["get"]["deprecated"])
	require.NotContains(t, doc.Paths["/v2/jobs/{id}"]["get"], "deprecated")
	body := doc.Paths["/v1/jobs"]["post"]["requestBody"].(map[string]any)["content"].(map[string]any)
	require.Contains(t, body, "multipart/form-data")
	require.Contains(t, body, "application/json")
	// The JSON request schema carries the per-task parameter ranges of the committed
	// JSON Schema.
	require.Contains(t, string(r.body), `"threshold"`)
	require.Contains(t, doc.Comps.Schemas, "JobV2")
	require.Contains(t, doc.Comps.Schemas, "Problem")
	for path := range doc.Paths {
		require.False(t, strings.HasPrefix(path, "/latest/"), "latest aliases are not documented twice: %s", path)
	}

	r = e.do(t, http.MethodGet, "/docs", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.body), "/openapi.json")
	for _, external := range []string{"src=\"http", "href=\"http", "import(\"http", "unpkg", "jsdelivr", "cdn"} {
		require.NotContains(t, strings.ToLower(string(r.body)), external, "the docs page loads nothing from elsewhere")
	}
	r = e.do(t, http.MethodGet, "/docs/problems", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.body), `id="idempotency_conflict"`)
}

func TestRequestIDIsEchoedLoggedAndBecomesTheTraceID(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	body, ct := form(t, file(encodePNG(t, gridImage(2, 2))), field("task", "remove-background"))
	req, err := http.NewRequest(http.MethodPost, e.api.URL+"/v1/jobs", strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Request-ID", "3F2504E0-4F89-11D3-9A0C-0305E82C3301")
	res, err := e.api.Client().Do(req)
	require.NoError(t, err)
	var job ingest.JobResponse
	require.NoError(t, json.NewDecoder(res.Body).Decode(&job))
	res.Body.Close()
	require.Equal(t, "3F2504E0-4F89-11D3-9A0C-0305E82C3301", res.Header.Get("X-Request-ID"))
	require.Regexp(t, `^\d+\.\d{3}ms$`, res.Header.Get("X-Processing-Time"))
	require.True(t, strings.HasPrefix(res.Header.Get("Server-Timing"), "app;dur="))
	require.Equal(t, "3f2504e04f8911d39a0c0305e82c3301", job.TraceID, "the request id is the trace id")
	msgs := e.requestMsgs(t)
	require.Len(t, msgs, 1)
	require.Contains(t, msgs[0].Header.Get("traceparent"), "-3f2504e04f8911d39a0c0305e82c3301-")
	require.Equal(t, "3F2504E0-4F89-11D3-9A0C-0305E82C3301", msgs[0].Header.Get("Studio-Request-Id"))

	// Without one, a trace-id-shaped id is generated, and problems carry it.
	r, err := e.api.Client().Get(e.api.URL + "/v1/jobs/01hzzzzzzzzzzzzzzzzzzzzzzz")
	require.NoError(t, err)
	var p ingest.Problem
	require.NoError(t, json.NewDecoder(r.Body).Decode(&p))
	r.Body.Close()
	require.Regexp(t, `^[0-9a-f]{32}$`, r.Header.Get("X-Request-ID"))
	require.Equal(t, r.Header.Get("X-Request-ID"), p.RequestID)
}

func TestCORSFollowsConfiguration(t *testing.T) {
	e := newEnv(t, ingest.Config{CORSOrigins: []string{"https://studio.example"}})
	preflight := func(origin string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, e.api.URL+"/v1/jobs", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "idempotency-key")
		res, err := e.api.Client().Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	res := preflight("https://studio.example")
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.Equal(t, "https://studio.example", res.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, res.Header.Get("Access-Control-Allow-Methods"), "DELETE")
	require.Contains(t, res.Header.Get("Access-Control-Allow-Headers"), "Idempotency-Key")
	res = preflight("https://evil.example")
	require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"))

	req, err := http.NewRequest(http.MethodGet, e.api.URL+"/v1/models", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://studio.example")
	res, err = e.api.Client().Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, "https://studio.example", res.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, res.Header.Get("Access-Control-Expose-Headers"), "X-Request-ID")
}

func TestFeedbackIsPublishedWithTheModelVersion(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	job := e.submitPNG(t)
	sub, err := e.srv.NC.SubscribeSync(schemas.SubjectFeedback)
	require.NoError(t, err)
	require.NoError(t, e.srv.NC.Flush())

	r := e.do(t, http.MethodPost, "/v1/feedback", jsonBody(t, map[string]any{"job_id": job.ID, "rating": "down", "comment": "hair cut off"}), "application/json")
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	m, err := sub.NextMsg(10 * time.Second)
	require.NoError(t, err)
	var fb schemas.Feedback
	require.NoError(t, json.Unmarshal(m.Data, &fb))
	require.NoError(t, fb.Validate())
	require.Equal(t, job.ID, fb.JobID)
	require.Equal(t, -1, fb.Rating)
	require.Equal(t, "hair cut off", fb.Comment)
	require.Equal(t, "small", fb.ModelVersion)

	requireProblem(t, e.do(t, http.MethodPost, "/v1/feedback", jsonBody(t, map[string]any{"job_id": "01hzzzzzzzzzzzzzzzzzzzzzzz", "rating": "up"}), "application/json"), http.StatusNotFound, "job_not_found")
	p := requireProblem(t, e.do(t, http.MethodPost, "/v1/feedback", jsonBody(t, map[string]any{"job_id": job.ID, "rating": "meh"}), "application/json"), http.StatusUnprocessableEntity, "invalid_request")
	require.Equal(t, []string{"rating"}, fieldsOf(p))
	require.Equal(t, "enum", p.Errors[0].Constraint)
	p = requireProblem(t, e.do(t, http.MethodPost, "/v1/feedback", jsonBody(t, map[string]any{"rating": "up"}), "application/json"), http.StatusUnprocessableEntity, "invalid_request")
	require.Equal(t, []string{"job_id"}, fieldsOf(p))
}

func TestTasksListTheParameterRanges(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	r := e.do(t, http.MethodGet, "/v1/tasks", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	var list ingest.TaskList
	require.NoError(t, json.Unmarshal(r.body, &list))
	byTask := map[schemas.Task]ingest.TaskInfo{}
	for _, ti := range list.Tasks {
		byTask[ti.Task] = ti
	}
	rb := byTask[schemas.TaskRemoveBackground]
	require.True(t, rb.Served)
	require.False(t, byTask[schemas.TaskOCR].Served)
	require.Equal(t, "threshold", rb.Params[0].Name)
	require.Equal(t, 0.0, *rb.Params[0].Minimum)
	require.Equal(t, 1.0, *rb.Params[0].Maximum)
}

func TestReadinessNeedsTheDefaultModelsLoaded(t *testing.T) {
	cat := models.NewCatalog()
	require.NoError(t, cat.Add(models.ISNet("small", "/nonexistent")))
	var mu sync.Mutex
	loaded := []string{"isnet@medium"} // this process runs inference, without the default
	svc := ingest.NewService(ingest.Config{}, nil, nil, nil, cat, nil, func(context.Context) error { return nil }, quietLog())
	svc.ReportLoaded(func() []string {
		mu.Lock()
		defer mu.Unlock()
		return loaded
	})
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)
	e := &env{api: api}
	r := e.do(t, http.MethodGet, "/health/ready", nil, "")
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Contains(t, string(r.body), "models not loaded: isnet@small")
	mu.Lock()
	loaded = []string{"isnet@small", "isnet@medium"}
	mu.Unlock()
	r = e.do(t, http.MethodGet, "/health", nil, "")
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var h ingest.Health
	require.NoError(t, json.Unmarshal(r.body, &h))
	require.Equal(t, map[string]string{"pipeline": "ok", "models": "ok"}, h.Checks)

	// A process without inference (it runs in workers) reports no loaded models and
	// is ready without them.
	mu.Lock()
	loaded = nil
	mu.Unlock()
	require.Equal(t, http.StatusOK, e.do(t, http.MethodGet, "/health/ready", nil, "").status)
}

func TestTheUploadPageIsServed(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	r := e.do(t, http.MethodGet, "/", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "text/html; charset=utf-8", r.contentType)
	require.Contains(t, string(r.body), "/v1/tasks", "the sliders come from the task parameter ranges")
	require.Contains(t, string(r.body), "/v2/jobs")
}

func TestModelsListTheCatalog(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	for _, path := range []string{"/v1/models", "/latest/models"} {
		r := e.do(t, http.MethodGet, path, nil, "")
		require.Equal(t, http.StatusOK, r.status)
		var list ingest.ModelList
		require.NoError(t, json.Unmarshal(r.body, &list))
		require.Len(t, list.Models, 1)
		m := list.Models[0]
		require.Equal(t, "isnet@small", m.ID)
		require.True(t, m.Default)
		require.Equal(t, schemas.TaskRemoveBackground, m.Task)
		require.Nil(t, m.Loaded, "this process runs no inference")
	}
}
