package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
)

// problemCode returns the code of a problem-details body.
func problemCode(t *testing.T, body []byte) string {
	t.Helper()
	var p ingest.Problem
	require.NoError(t, json.Unmarshal(body, &p), "%s", body)
	return p.Code
}

// Disabling a user, tried as the disabled user would: every credential of theirs (API
// key, access token, refresh token, ticket) on both entries, and a WebSocket and an SSE
// stream left open. The ping interval is the default 30 s, so a stream that ends
// within the bound below was ended by the users-bucket watch, not by a ping.
func TestDisablingAUserRefusesEveryCredentialOnBothEntriesUntilEnabled(t *testing.T) {
	e := newAdmissionEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, e.sec.Users.Create(ctx, &auth.User{Tenant: "ta", ID: "dan", Tier: schemas.TierNormal, Scopes: auth.UserScopes}))
	pair, err := e.sec.Issuer.Issue(ctx, "ta", "dan")
	require.NoError(t, err)
	key := e.apiKey(t, "ta", "dan", auth.ScopeJobsWrite, auth.ScopeJobsRead)
	admin := e.tokens["alice"]

	job := jobID(t, e.submitAs(t, key))
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.api.URL, "http")+"/v1/jobs/"+job+"/events?ticket="+url.QueryEscape(e.ticketFor(t, key, job)), nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	var f ingest.EventFrame
	require.NoError(t, wsjson.Read(ctx, ws, &f))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.api.URL+"/v1/jobs/"+job+"/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
	sse, err := e.api.Client().Do(req)
	require.NoError(t, err)
	defer sse.Body.Close()
	require.Equal(t, http.StatusOK, sse.StatusCode)
	unusedTicket := e.ticketFor(t, key, job)
	r := e.call(t, http.MethodPost, "/v1/uploads", key, nil, "")
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	var upload ingest.UploadTicket
	require.NoError(t, json.Unmarshal(r.body, &upload))

	// Only an admin of the tenant disables, never themselves, and only existing users.
	r = e.call(t, http.MethodPost, "/v1/users/dan/disable", e.tokens["carol"], nil, "")
	require.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	r = e.call(t, http.MethodPost, "/v1/users/dan/disable", e.tokens["bob"], nil, "")
	require.Equal(t, http.StatusForbidden, r.status, "an admin of another tenant is no admin here: %s", r.body)
	r = e.call(t, http.MethodPost, "/v1/users/alice/disable", admin, nil, "")
	require.Equal(t, http.StatusConflict, r.status, "%s", r.body)
	require.Equal(t, "disable_self", problemCode(t, r.body))
	r = e.call(t, http.MethodPost, "/v1/users/nobody/disable", admin, nil, "")
	require.Equal(t, http.StatusNotFound, r.status, "%s", r.body)

	disabledAt := time.Now()
	r = e.call(t, http.MethodPost, "/v1/users/dan/disable", admin, nil, "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var u auth.User
	require.NoError(t, json.Unmarshal(r.body, &u))
	require.True(t, u.Disabled)
	require.NotNil(t, u.DisabledAt)
	e.audit.requireEvent(t, auth.ActionUserDisable, auth.ResultAllowed, "", "user/dan")

	// The live streams end promptly, saying why.
	const bound = 5 * time.Second
	for {
		err := wsjson.Read(ctx, ws, &f)
		if err == nil {
			continue
		}
		require.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "%v", err)
		require.Contains(t, err.Error(), "disabled")
		break
	}
	body, err := io.ReadAll(sse.Body)
	require.NoError(t, err)
	require.Contains(t, string(body), "event: revoked\ndata: your user was disabled")
	require.Less(t, time.Since(disabledAt), bound, "the streams closed within %s (the ping interval is 30 s)", bound)

	// Every credential is refused on HTTP.
	for _, c := range []struct {
		name, bearer string
		status       int
		code         string
	}{
		{"API key", key, http.StatusForbidden, "user_disabled"},
		{"access token (its session was revoked)", pair.AccessToken, http.StatusUnauthorized, "invalid_token"},
	} {
		for _, rt := range [][2]string{{http.MethodGet, "/v2/jobs"}, {http.MethodGet, "/v2/jobs/" + job}, {http.MethodPost, "/v1/tickets"}, {http.MethodPost, "/v1/uploads"}, {http.MethodDelete, "/v2/jobs/" + job}} {
			r := e.call(t, rt[0], rt[1], c.bearer, []byte(`{"jobs":["`+job+`"]}`), "application/json")
			require.Equal(t, c.status, r.status, "%s: %s %s: %s", c.name, rt[0], rt[1], r.body)
			require.Equal(t, c.code, problemCode(t, r.body), "%s: %s %s", c.name, rt[0], rt[1])
		}
	}
	r = e.call(t, http.MethodPost, "/v1/auth/refresh", "", []byte(`{"refresh_token":"`+pair.RefreshToken+`"}`), "application/json")
	require.Equal(t, http.StatusUnauthorized, r.status, "the refresh family was revoked: %s", r.body)
	r = e.call(t, http.MethodPost, "/v1/auth/login", admin, []byte(`{"tenant":"ta","user":"dan"}`), "application/json")
	require.Equal(t, http.StatusForbidden, r.status, "no new session for a disabled user: %s", r.body)
	require.Equal(t, "user_disabled", problemCode(t, r.body))
	r = e.call(t, http.MethodPut, upload.UploadURL, "", encodePNG(t, gridImage(8, 8)), "image/png")
	require.Equal(t, http.StatusForbidden, r.status, "a URL presigned before the disable stores nothing: %s", r.body)
	require.Equal(t, "user_disabled", problemCode(t, r.body))
	status, code := e.openEvents(t, job, "ticket="+url.QueryEscape(unusedTicket))
	require.Equal(t, http.StatusForbidden, status, "a ticket minted before the disable")
	require.Equal(t, "user_disabled", code)

	// ... and on both submission entries.
	for _, entry := range admissionEntries {
		out := entry.submit(t, e.secureEnv, submission{bearer: key, body: jobBody(t)})
		require.Equal(t, http.StatusForbidden, out.status, "%s: %s", entry.name, out.raw)
		require.Equal(t, "user_disabled", out.code, entry.name)
	}
	// The job accepted before the disable is left to finish (it is not cancelled).
	rec, err := e.jobs.Get(ctx, job)
	require.NoError(t, err)
	require.Equal(t, schemas.StatusQueued, rec.Status)

	// Enabling restores the key on both entries; the revoked session stays revoked.
	r = e.call(t, http.MethodPost, "/v1/users/dan/enable", e.tokens["carol"], nil, "")
	require.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	r = e.call(t, http.MethodPost, "/v1/users/dan/enable", admin, nil, "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	u = auth.User{}
	require.NoError(t, json.Unmarshal(r.body, &u))
	require.False(t, u.Disabled)
	e.audit.requireEvent(t, auth.ActionUserEnable, auth.ResultAllowed, "", "user/dan")
	require.Equal(t, http.StatusOK, e.call(t, http.MethodGet, "/v2/jobs/"+job, key, nil, "").status)
	for _, entry := range admissionEntries {
		out := entry.submit(t, e.secureEnv, submission{bearer: key, body: jobBody(t)})
		require.Equal(t, http.StatusAccepted, out.status, "%s: %s", entry.name, out.raw)
	}
	require.Equal(t, http.StatusUnauthorized, e.call(t, http.MethodGet, "/v2/jobs", pair.AccessToken, nil, "").status)
	r = e.call(t, http.MethodPost, "/v1/auth/login", admin, []byte(`{"tenant":"ta","user":"dan"}`), "application/json")
	require.Equal(t, http.StatusOK, r.status, "a new login works: %s", r.body)
}
