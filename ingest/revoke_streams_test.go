package ingest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
)

// Revoking an API key, with two ingest replicas: the WebSocket and SSE streams opened
// with the key, with a ticket it minted, with a key it minted and with that key's
// ticket end on both replicas, saying why; a stream of a sibling key goes on, and a
// ticket the key minted before the revocation opens nothing. The ping interval is the
// default 30 s, so a stream that ends within the bound below was ended by the apikeys
// watch, not by a ping.
func TestRevokingAKeyEndsTheStreamsOpenedWithItAndWithWhatItMintedOnEveryReplica(t *testing.T) {
	e := newSecureEnv(t)
	other := e.replica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	manage := `{"scopes":["jobs:read","keys:manage"]}`
	status, parent, body := e.mint(t, e.tokens["carol"], manage)
	require.Equal(t, http.StatusCreated, status, body)
	status, child, body := e.mint(t, parent.Key, manage)
	require.Equal(t, http.StatusCreated, status, body)
	status, sibling, body := e.mint(t, e.tokens["carol"], `{"scopes":["jobs:read"]}`)
	require.Equal(t, http.StatusCreated, status, body)
	job := jobID(t, e.submitAs(t, e.tokens["carol"]))

	eventsURL := func(api *httptest.Server, query string) string {
		return api.URL + "/v1/jobs/" + job + "/events" + query
	}
	openWS := func(api *httptest.Server, bearer string) *websocket.Conn {
		t.Helper()
		u := "ws" + strings.TrimPrefix(eventsURL(api, "?ticket="+url.QueryEscape(e.ticketFor(t, bearer, job))), "http")
		ws, _, err := websocket.Dial(ctx, u, nil)
		require.NoError(t, err)
		t.Cleanup(func() { ws.CloseNow() })
		var f ingest.EventFrame
		require.NoError(t, wsjson.Read(ctx, ws, &f))
		require.Equal(t, ingest.FrameState, f.Type)
		return ws
	}
	openSSE := func(api *httptest.Server, bearer string) io.ReadCloser {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, eventsURL(api, ""), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+bearer)
		res, err := api.Client().Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { res.Body.Close() })
		require.Equal(t, http.StatusOK, res.StatusCode)
		return res.Body
	}
	wsStreams := map[string]*websocket.Conn{
		"WebSocket, ticket of the key, other replica":       openWS(other, parent.Key),
		"WebSocket, ticket of the minted key, this replica": openWS(e.api, child.Key),
	}
	sseStreams := map[string]io.ReadCloser{
		"SSE, the key, this replica":         openSSE(e.api, parent.Key),
		"SSE, the minted key, other replica": openSSE(other, child.Key),
	}
	control := openWS(other, sibling.Key)
	unusedTicket := e.ticketFor(t, child.Key, job)

	revokedAt := time.Now()
	r := e.call(t, http.MethodDelete, "/v1/keys/"+parent.ID, e.tokens["carol"], nil, "")
	require.Equal(t, http.StatusNoContent, r.status, "%s", r.body)

	const bound = 5 * time.Second
	for name, ws := range wsStreams {
		for {
			var f ingest.EventFrame
			err := wsjson.Read(ctx, ws, &f)
			if err == nil {
				continue
			}
			require.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "%s: %v", name, err)
			require.Contains(t, err.Error(), "your API key was revoked", name)
			break
		}
	}
	for name, sse := range sseStreams {
		body, err := io.ReadAll(sse) // ends when the server closes the stream
		require.NoError(t, err, name)
		require.Contains(t, string(body), "event: revoked\ndata: your API key was revoked", name)
	}
	require.Less(t, time.Since(revokedAt), bound, "the streams closed within %s (the ping interval is 30 s)", bound)

	// The sibling's stream is alive: it carries the next change of the job.
	_, err := e.jobs.Update(ctx, job, func(rec *schemas.JobRecord) error {
		rec.Percent = 42
		return nil
	})
	require.NoError(t, err)
	for {
		var f ingest.EventFrame
		require.NoError(t, wsjson.Read(ctx, control, &f), "the sibling key's stream")
		if f.Percent == 42 {
			break
		}
	}

	// A ticket minted with the revoked branch before the revocation opens nothing.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, eventsURL(other, "?ticket="+url.QueryEscape(unusedTicket)), nil)
	require.NoError(t, err)
	res, err := other.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
}
