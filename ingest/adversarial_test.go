package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
	"github.com/creativeai-studio/studio/schemas"
)

// Resource bounds, tried as an attacker on both entries (HTTP and the NATS submit
// subject) against a real secured service: each case asserts what the attacker gets
// and what is left on the server.

// A progressive JPEG with thousands of empty scans is a few hundred kilobytes that
// would keep a preprocess worker decoding for minutes; admission counts its scans from
// the markers and refuses it before anything is stored or queued.
func TestAJPEGWithThousandsOfScansIsRefusedAtAdmissionOnBothEntries(t *testing.T) {
	for _, entry := range admissionEntries {
		t.Run(entry.name, func(t *testing.T) {
			e := newAdmissionEnv(t)
			body := jobBody(t)
			body.Image = &schemas.ImageInput{Data: imagetest.ManyScanJPEG(4096, 4096, 5000)}
			out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: body})
			require.Equal(t, http.StatusRequestEntityTooLarge, out.status, "%s", out.raw)
			require.Equal(t, "image_too_large", out.code)
			require.Contains(t, string(out.raw), "scans")
			require.Contains(t, string(out.raw), "baseline", "the problem says what to do")
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, "image_too_large", "")

			// Nothing was queued: a normal job is the first message of REQUESTS.
			out = entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
			require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
			st, err := e.srv.JS.Stream(t.Context(), schemas.StreamRequests)
			require.NoError(t, err)
			info, err := st.Info(t.Context())
			require.NoError(t, err)
			require.EqualValues(t, 1, info.State.Msgs, "only the valid job was queued")
		})
	}
}

// Every unauthenticated request used to write one AUDIT message (kept 30 days): an
// anonymous flood filled the disk. Now only a sample per source and minute is stored
// and the rest are counted.
func TestAnAnonymousFloodStoresOnlyASampleOfAuditEventsOnBothEntries(t *testing.T) {
	const flood = 60
	for _, entry := range admissionEntries {
		t.Run(entry.name, func(t *testing.T) {
			e := newAdmissionEnv(t)
			for i := range flood {
				bearer := ""
				if i%2 == 1 {
					bearer = "not-a-token"
				}
				out := entry.submit(t, e.secureEnv, submission{bearer: bearer, body: jobBody(t)})
				require.Equal(t, http.StatusUnauthorized, out.status, "%s", out.raw)
			}
			e.audit.requireEvent(t, auth.ActionAuthenticate, auth.ResultDenied, "", "")

			// An identified caller is still audited one by one after the flood.
			out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
			require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultAllowed, "", "job/"+out.jobID)

			// What is left on the server: the AUDIT stream holds the sample (two windows
			// at most if the minute turned during the flood), not one event per request.
			st, err := e.srv.JS.Stream(t.Context(), schemas.StreamAudit)
			require.NoError(t, err)
			info, err := st.Info(t.Context())
			require.NoError(t, err)
			anon := 0
			for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
				m, err := st.GetMsg(t.Context(), seq)
				require.NoError(t, err)
				if m.Subject == schemas.AuditSubject(auth.ActionAuthenticate) && strings.Contains(string(m.Data), `"actor":"anonymous"`) {
					anon++
				}
			}
			require.GreaterOrEqual(t, anon, 1, "failures are still sampled")
			require.LessOrEqual(t, anon, 2*auth.DefaultAnonPerSource, "a flood of %d stored %d audit events", flood, anon)
		})
	}
}

// Presigned uploads used to be unbounded and kept for ever: a user could store any
// number of (metadata-stripped, but still personal) images that no job referenced. Now
// one user's stored uploads are bounded in count and bytes; past the bound a ticket
// and a PUT are refused with 429 and nothing more is stored.
func TestPresignedUploadsAreBoundedPerUser(t *testing.T) {
	img := encodeJPEG(t, photoImage(320, 240))
	ticket := func(t *testing.T, e *env) (ingest.UploadTicket, response) {
		r := e.do(t, http.MethodPost, "/v1/uploads", nil, "")
		var tk ingest.UploadTicket
		if r.status == http.StatusCreated {
			require.NoError(t, json.Unmarshal(r.body, &tk))
		}
		return tk, r
	}
	stored := func(t *testing.T, e *env) int {
		objs, err := e.blobs.List(context.Background(), ingest.UserUploadPrefix("local", "local"))
		require.NoError(t, err)
		return len(objs)
	}
	t.Run("the upload past the count is refused, and so is its ticket", func(t *testing.T) {
		e := newEnv(t, ingest.Config{UploadQuota: 2})
		spare, r := ticket(t, e) // issued before the quota is reached
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		for range 2 {
			tk, r := ticket(t, e)
			require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
			r = e.do(t, http.MethodPut, tk.UploadURL, img, "application/octet-stream")
			require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		}
		_, r = ticket(t, e)
		p := requireProblem(t, r, http.StatusTooManyRequests, "upload_quota_exceeded")
		require.Contains(t, p.Detail, "2 uploads")
		r = e.do(t, http.MethodPut, spare.UploadURL, img, "application/octet-stream")
		requireProblem(t, r, http.StatusTooManyRequests, "upload_quota_exceeded")
		require.Equal(t, 2, stored(t, e), "nothing past the quota was stored")
	})
	t.Run("the upload past the bytes is refused before it is stored", func(t *testing.T) {
		e := newEnv(t, ingest.Config{UploadQuotaBytes: int64(len(img)) * 3 / 2})
		tk, r := ticket(t, e)
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		r = e.do(t, http.MethodPut, tk.UploadURL, img, "application/octet-stream")
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		tk, r = ticket(t, e)
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		r = e.do(t, http.MethodPut, tk.UploadURL, img, "application/octet-stream")
		requireProblem(t, r, http.StatusTooManyRequests, "upload_quota_exceeded")
		require.Equal(t, 1, stored(t, e))
	})
}

// An upload is kept a day (--upload-ttl), used or not: after the retention sweep no
// entry can submit a job from it, and the object is gone from the store.
func TestAnExpiredUploadIsDeletedAndUsableByNoEntry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, ingest.Config{})
	e.serveNATS(t)
	nc := e.upstream(t)
	r := e.do(t, http.MethodPost, "/v1/uploads", nil, "")
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	var tk ingest.UploadTicket
	require.NoError(t, json.Unmarshal(r.body, &tk))
	r = e.do(t, http.MethodPut, tk.UploadURL, encodeJPEG(t, photoImage(64, 48)), "application/octet-stream")
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)

	sweep := &erasure.Retention{Blobs: e.blobs, Jobs: e.jobs, Now: func() time.Time { return time.Now().Add(erasure.DefaultUploadTTL + time.Hour) }}
	swept, err := sweep.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, swept.Uploads)
	_, err = e.blobs.Stat(ctx, tk.Key)
	require.ErrorIs(t, err, blob.ErrNotFound)

	r = e.do(t, http.MethodPost, "/v1/jobs", jsonBody(t, map[string]any{"task": "remove-background", "image": map[string]any{"key": tk.Key}}), "application/json")
	requireProblem(t, r, http.StatusUnprocessableEntity, "missing_object")
	res := request(t, nc, "studio.submit.remove-background", schemas.JobRequest{Schema: schemas.SchemaJobSubmit, Image: &schemas.ImageInput{Key: tk.Key}}, nil)
	require.Equal(t, "422", res.Header.Get(micro.ErrorCodeHeader), "%s", res.Data)
	require.Contains(t, string(res.Data), "missing_object")
}
