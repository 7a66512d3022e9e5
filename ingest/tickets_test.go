package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/auth"
)

// ticketFor mints a ticket for jobs with bearer and returns it; it fails the test
// unless the answer is 201.
func (e *secureEnv) ticketFor(t *testing.T, bearer string, jobs ...string) string {
	t.Helper()
	body, _ := json.Marshal(ingest.TicketRequest{Jobs: jobs})
	r := e.call(t, http.MethodPost, "/v1/tickets", bearer, body, "application/json")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var tk auth.Ticket
	require.NoError(t, json.Unmarshal(r.body, &tk))
	require.Equal(t, jobs, tk.Jobs)
	require.LessOrEqual(t, tk.ExpiresIn, 60, "a ticket lives seconds, not minutes")
	return tk.Ticket
}

// openEvents opens a job's event stream as server-sent events with query (no
// Authorization header) and returns the status; a stream that opened is closed at once.
func (e *secureEnv) openEvents(t *testing.T, job, query string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.api.URL+"/v1/jobs/"+job+"/events?"+query, nil)
	require.NoError(t, err)
	res, err := e.api.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var p struct {
			Code string `json:"code"`
		}
		_ = json.NewDecoder(res.Body).Decode(&p)
		return res.StatusCode, p.Code
	}
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	buf := make([]byte, 64)
	n, _ := res.Body.Read(buf)
	require.Contains(t, string(buf[:n]), "event: job", "the first event is the job's state")
	return res.StatusCode, ""
}

func TestAnEventStreamTakesASingleUseTicketAndNoLongLivedCredential(t *testing.T) {
	e := newSecureEnv(t)
	dan := e.addUser(t, "ta", "dan", auth.UserScopes...)
	carolJob := jobID(t, e.submitAs(t, e.tokens["carol"]))
	danJob := jobID(t, e.submitAs(t, dan))
	bobJob := jobID(t, e.submitAs(t, e.tokens["bob"]))

	t.Run("a ticket opens its job's WebSocket once", func(t *testing.T) {
		tk := e.ticketFor(t, e.tokens["carol"], carolJob)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		u := "ws" + strings.TrimPrefix(e.api.URL, "http") + "/v1/jobs/" + carolJob + "/events?ticket=" + url.QueryEscape(tk)
		c, _, err := websocket.Dial(ctx, u, nil)
		require.NoError(t, err)
		var f ingest.EventFrame
		require.NoError(t, wsjson.Read(ctx, c, &f))
		require.Equal(t, ingest.FrameState, f.Type)
		require.Equal(t, carolJob, f.Job.ID)
		c.Close(websocket.StatusNormalClosure, "")

		_, res, err := websocket.Dial(ctx, u, nil)
		require.Error(t, err, "the second use of a ticket")
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	})
	t.Run("a ticket opens its job's server-sent events once", func(t *testing.T) {
		tk := e.ticketFor(t, e.tokens["carol"], carolJob)
		status, _ := e.openEvents(t, carolJob, "ticket="+url.QueryEscape(tk))
		require.Equal(t, http.StatusOK, status)
		status, code := e.openEvents(t, carolJob, "ticket="+url.QueryEscape(tk))
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "invalid_ticket", code)
	})
	t.Run("of concurrent uses of one ticket exactly one gets through", func(t *testing.T) {
		tk := e.ticketFor(t, e.tokens["carol"], carolJob)
		var mu sync.Mutex
		got := map[int]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, _ := e.openEvents(t, carolJob, "ticket="+url.QueryEscape(tk))
				mu.Lock()
				got[status]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		require.Equal(t, map[int]int{http.StatusOK: 1, http.StatusUnauthorized: 7}, got)
	})
	t.Run("a ticket for another job of the same user is refused", func(t *testing.T) {
		other := jobID(t, e.submitAs(t, e.tokens["carol"]))
		tk := e.ticketFor(t, e.tokens["carol"], carolJob)
		status, code := e.openEvents(t, other, "ticket="+url.QueryEscape(tk))
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "invalid_ticket", code)
	})
	t.Run("another user's ticket opens none of carol's jobs", func(t *testing.T) {
		for _, bearer := range []string{dan, e.tokens["bob"]} {
			own := danJob
			if bearer == e.tokens["bob"] {
				own = bobJob
			}
			tk := e.ticketFor(t, bearer, own)
			status, _ := e.openEvents(t, carolJob, "ticket="+url.QueryEscape(tk))
			require.Equal(t, http.StatusUnauthorized, status)
		}
	})
	t.Run("nobody gets a ticket for a job that is not theirs", func(t *testing.T) {
		for _, bearer := range []string{dan, e.tokens["bob"]} {
			body, _ := json.Marshal(ingest.TicketRequest{Jobs: []string{carolJob}})
			r := e.call(t, http.MethodPost, "/v1/tickets", bearer, body, "application/json")
			require.Equal(t, http.StatusNotFound, r.status, string(r.body))
			require.Contains(t, string(r.body), "job_not_found")
		}
	})
	t.Run("a tenant admin gets a ticket for a tenant member's job", func(t *testing.T) {
		tk := e.ticketFor(t, e.tokens["alice"], danJob)
		status, _ := e.openEvents(t, danJob, "ticket="+url.QueryEscape(tk))
		require.Equal(t, http.StatusOK, status)
	})
	t.Run("an expired ticket is refused", func(t *testing.T) {
		// Minted by a clock a minute behind: it expired 15 s ago, inside the leeway
		// that tokens get, which a ticket does not.
		old, err := e.issuer(t, e.keySpec, -time.Minute).IssueTicket(auth.Principal{Tenant: "ta", User: "carol", Scopes: []auth.Scope{auth.ScopeJobsRead}}, []string{carolJob})
		require.NoError(t, err)
		status, code := e.openEvents(t, carolJob, "ticket="+url.QueryEscape(old.Ticket))
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, "invalid_ticket", code)
	})
	t.Run("a forged ticket is refused", func(t *testing.T) {
		tk := e.ticketFor(t, e.tokens["carol"], carolJob)
		forged := tk[:len(tk)-4] + "AAAA"
		status, _ := e.openEvents(t, carolJob, "ticket="+url.QueryEscape(forged))
		require.Equal(t, http.StatusUnauthorized, status)
	})
	t.Run("a token in the query string is refused", func(t *testing.T) {
		for _, cred := range []string{e.tokens["carol"], e.svc.Security().Issuer.AccessTTL().String()} {
			status, code := e.openEvents(t, carolJob, "access_token="+url.QueryEscape(cred))
			require.Equal(t, http.StatusUnauthorized, status)
			require.Equal(t, "credential_in_url", code)
		}
	})
	t.Run("a ticket is no bearer token", func(t *testing.T) {
		tk := e.ticketFor(t, e.tokens["carol"], carolJob)
		for _, path := range []string{"/v2/jobs", "/v2/jobs/" + carolJob, "/v1/jobs/" + carolJob + "/events"} {
			r := e.call(t, http.MethodGet, path, tk, nil, "")
			require.Equal(t, http.StatusUnauthorized, r.status, path)
		}
		// Nor does it open anything but an event stream.
		r := e.call(t, http.MethodGet, "/v2/jobs/"+carolJob+"?ticket="+url.QueryEscape(tk), "", nil, "")
		require.Equal(t, http.StatusUnauthorized, r.status)
	})
	t.Run("a deleted user's ticket is refused", func(t *testing.T) {
		tk := e.ticketFor(t, dan, danJob)
		r := e.call(t, http.MethodDelete, "/v1/users/dan", e.tokens["alice"], nil, "")
		require.Equal(t, http.StatusNoContent, r.status, string(r.body))
		status, _ := e.openEvents(t, danJob, "ticket="+url.QueryEscape(tk))
		require.Equal(t, http.StatusUnauthorized, status)
	})
}

// TestDeletingAUserEndsTheirLiveEventStreams opens a WebSocket and a server-sent event
// stream of one user's queued job, deletes the user, and requires both streams to end
// within a ping interval, saying why.
func TestDeletingAUserEndsTheirLiveEventStreams(t *testing.T) {
	e := newSecureEnvWith(t, ingest.Config{PingInterval: 100 * time.Millisecond})
	job := jobID(t, e.submitAs(t, e.tokens["carol"]))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	u := "ws" + strings.TrimPrefix(e.api.URL, "http") + "/v1/jobs/" + job + "/events?ticket=" + url.QueryEscape(e.ticketFor(t, e.tokens["carol"], job))
	ws, _, err := websocket.Dial(ctx, u, nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	var f ingest.EventFrame
	require.NoError(t, wsjson.Read(ctx, ws, &f))
	require.Equal(t, ingest.FrameState, f.Type)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.api.URL+"/v1/jobs/"+job+"/events?ticket="+url.QueryEscape(e.ticketFor(t, e.tokens["carol"], job)), nil)
	require.NoError(t, err)
	sse, err := e.api.Client().Do(req)
	require.NoError(t, err)
	defer sse.Body.Close()
	require.Equal(t, http.StatusOK, sse.StatusCode)

	r := e.call(t, http.MethodDelete, "/v1/users/carol", e.tokens["alice"], nil, "")
	require.Equal(t, http.StatusNoContent, r.status, string(r.body))

	for {
		err := wsjson.Read(ctx, ws, &f)
		if err == nil {
			continue // frames sent before the next ping
		}
		require.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "the WebSocket ends with a policy close: %v", err)
		break
	}
	body, err := io.ReadAll(sse.Body) // ends when the server closes the stream
	require.NoError(t, err)
	require.Contains(t, string(body), "event: revoked")
}
