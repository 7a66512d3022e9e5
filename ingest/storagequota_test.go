package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
)

// storageQuota gives tenant tb a storage quota of limit bytes, counted from the object
// store at every check (so that the test sees deletions at once; the caching of the
// count is TestStorageUsageIsKeptBetweenCountsAndCorrectedByTheNext in quota).
func storageQuota(limit int64) func(*app.Config) {
	return func(c *app.Config) {
		c.StorageQuota = quota.StorageLimits{Default: 1 << 40, Tenants: map[string]int64{"tb": limit}, Recount: -1}
	}
}

// A tenant fills its storage quota with inputs and results; the next submission is
// refused on either entry with a problem naming the quota and the usage; deleting a
// result, or erasing a user's data, makes room and the tenant is admitted again. Another
// tenant is not affected.
func TestTheTenantStorageQuotaRefusesWhenFullAndAdmitsAfterDeletionOnBothEntries(t *testing.T) {
	ctx := context.Background()
	img := jobBody(t).Image.Data
	size := int64(len(img))
	for _, entry := range admissionEntries {
		t.Run(entry.name, func(t *testing.T) {
			e := admissionEnvOn(t, newSecureEnvOpts(t, ingest.Config{}, storageQuota(2*size+size/2), nil))
			dave := auth.User{Tenant: "tb", ID: "dave", Tier: schemas.TierNormal, Scopes: auth.UserScopes}
			require.NoError(t, e.sec.Users.Create(ctx, &dave))
			pair, err := e.sec.Issuer.Issue(ctx, "tb", "dave")
			require.NoError(t, err)
			submit := func(user string) outcome {
				tok := e.tokens[user]
				if user == "dave" {
					tok = pair.AccessToken
				}
				return entry.submit(t, e.secureEnv, submission{bearer: tok, body: jobBody(t)})
			}
			requireRefused := func(out outcome) {
				t.Helper()
				require.Equal(t, http.StatusForbidden, out.status, "%s", out.raw)
				require.Equal(t, "storage_quota_exceeded", out.code)
				require.Contains(t, string(out.raw), "storage quota of "+quota.HumanBytes(2*size+size/2), "the problem names the quota")
				require.Contains(t, string(out.raw), "tenant tb stores", "and the usage")
				require.Contains(t, out.fields, "storage")
			}

			first := submit("dave")
			require.Equal(t, http.StatusAccepted, first.status, "%s", first.raw)
			// The store stage writes the job's result under the tenant's prefix.
			result := "results/tb/" + first.jobID + "/cutout.png"
			_, err = e.svc.Blobs().Put(ctx, result, bytes.NewReader(img), size, "image/png")
			require.NoError(t, err)

			requireRefused(submit("bob"))
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, "storage_quota_exceeded", "")
			if entry.name == "HTTP" { // the other HTTP entries admit through the same rule
				body, ct := form(t, file(img), field("task", "remove-background"))
				r := e.call(t, http.MethodPost, "/v2/predict", e.tokens["bob"], body, ct)
				require.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
				require.Contains(t, string(r.body), "storage_quota_exceeded")
				body, ct = batchForm(t, 2, field("task", "remove-background"))
				r = e.call(t, http.MethodPost, "/v2/batches", e.tokens["bob"], body, ct)
				require.Contains(t, string(r.body), "storage_quota_exceeded", "%s", r.body)
			}
			// Another tenant's users are not limited by tb's storage.
			require.Equal(t, http.StatusAccepted, submit("alice").status)

			// Deleting the result (retention, or the owner) makes room for one more input.
			require.NoError(t, e.svc.Blobs().Delete(ctx, result))
			out := submit("bob")
			require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
			requireRefused(submit("bob"))

			// Erasing dave's data (his own session) frees his input: bob is admitted again.
			r := e.call(t, http.MethodDelete, "/v1/users/dave/data", pair.AccessToken, nil, "")
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			out = submit("bob")
			require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)

			u, err := e.sec.Storage.Usage(ctx, "tb")
			require.NoError(t, err)
			require.Equal(t, 2, u.Objects, "bob's two inputs are what tb stores")
			require.LessOrEqual(t, u.Bytes(), 2*size+size/2)
		})
	}
}

// Presigned uploads count against the tenant's storage: no ticket once it is full, and
// a PUT that would not fit stores nothing.
func TestUploadsCountAgainstTheTenantStorageQuota(t *testing.T) {
	ctx := context.Background()
	img := encodeJPEG(t, photoImage(320, 240))
	e := newSecureEnvOpts(t, ingest.Config{}, storageQuota(int64(len(img))*3/2), nil)
	ticket := func() (ingest.UploadTicket, authResponse) {
		r := e.call(t, http.MethodPost, "/v1/uploads", e.tokens["bob"], nil, "")
		var tk ingest.UploadTicket
		if r.status == http.StatusCreated {
			require.NoError(t, json.Unmarshal(r.body, &tk))
		}
		return tk, r
	}
	put := func(tk ingest.UploadTicket) authResponse {
		req, err := http.NewRequest(http.MethodPut, e.api.URL+tk.UploadURL, bytes.NewReader(img))
		require.NoError(t, err)
		res, err := e.api.Client().Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(res.Body)
		return authResponse{status: res.StatusCode, header: res.Header, body: buf.Bytes()}
	}
	tk1, r := ticket()
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	tk2, r := ticket()
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	r = put(tk1)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)

	r = put(tk2)
	require.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	require.Contains(t, string(r.body), "storage_quota_exceeded")
	_, err := e.svc.Blobs().Stat(ctx, tk2.Key)
	require.Error(t, err, "the upload that did not fit was not stored")

	// Fill to the byte: no ticket either.
	var stored int64
	objs, err := e.svc.Blobs().List(ctx, "uploads/tb/")
	require.NoError(t, err)
	for _, o := range objs {
		stored += o.Size
	}
	filler := int64(len(img))*3/2 - stored
	_, err = e.svc.Blobs().Put(ctx, "uploads/tb/bob/filler", bytes.NewReader(make([]byte, filler)), filler, "")
	require.NoError(t, err)
	_, r = ticket()
	require.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	require.Contains(t, string(r.body), "storage_quota_exceeded")
	require.Contains(t, string(r.body), strconv.Itoa(len(img)*3/2)+" bytes", "the usage and quota in bytes")
}
