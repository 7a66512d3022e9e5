package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/streams"
)

// TestUsersDisableAndEnable runs `studio users disable` and `enable` for real against
// `studio ingest` on an embedded NATS server: the user's API key is refused over HTTP
// with 403 user_disabled while the user is disabled, their session for good, and the
// key works again after enable.
func TestUsersDisableAndEnable(t *testing.T) {
	e, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	c := &cluster{owner: t, natsURL: e.ClientURL(), dataDir: t.TempDir()}
	c.api = fmt.Sprintf("http://127.0.0.1:%d", port(t))
	c.env = testEnv("STUDIO_NATS_URL="+c.natsURL, "STUDIO_DATA_DIR="+c.dataDir, "STUDIO_SERVER="+c.api)
	ingestProc := c.start(t, "ingest", "--http", strings.TrimPrefix(c.api, "http://"), "--worker-id", "cli-ingest")
	waitFor(t, ingestProc, time.Minute, "studio ingest serving", func() bool { return httpOK(c.api + "/health/live") })

	expect(t, studio(t, c.env, "users", "create", "--tenant", "acme", "--user", "dan"), 0, "created acme/dan")
	r := studio(t, c.env, "users", "token", "--tenant", "acme", "--user", "dan")
	expect(t, r, 0, "access_token")
	var pair auth.TokenPair
	if err := json.Unmarshal([]byte(r.stdout), &pair); err != nil {
		t.Fatal(err)
	}
	call := func(method, path, bearer, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, c.api+path, bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(data)
	}
	status, body := call(http.MethodPost, "/v1/keys", pair.AccessToken, `{"name":"ci","scopes":["jobs:read"]}`)
	if status != http.StatusCreated {
		t.Fatalf("create key: %d %s", status, body)
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(body), &key); err != nil {
		t.Fatal(err)
	}

	expect(t, studio(t, c.env, "users", "disable", "--tenant", "acme", "--user", "dan"), 0, "disabled acme/dan and revoked 1 sessions")
	if r := studio(t, c.env, "users", "list", "--tenant", "acme"); !regexp.MustCompile(`(?m)^dan\s.*\sdisabled$`).MatchString(r.stdout) {
		t.Fatalf("users list does not show dan as disabled\n%s", r)
	}
	if status, body := call(http.MethodGet, "/v2/jobs", key.Key, ""); status != http.StatusForbidden || !strings.Contains(body, `"user_disabled"`) {
		t.Fatalf("the disabled user's key: %d %s, want 403 user_disabled", status, body)
	}
	if status, _ := call(http.MethodGet, "/v2/jobs", pair.AccessToken, ""); status != http.StatusUnauthorized {
		t.Fatalf("the disabled user's session: %d, want 401", status)
	}
	r = studio(t, c.as(key.Key), "jobs", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "user_disabled") && !strings.Contains(r.stderr, "403") {
		t.Fatalf("jobs list with the disabled user's key: want exit 1 and 403\n%s", r)
	}

	expect(t, studio(t, c.env, "users", "enable", "--tenant", "acme", "--user", "dan"), 0, "enabled acme/dan")
	if status, body := call(http.MethodGet, "/v2/jobs", key.Key, ""); status != http.StatusOK {
		t.Fatalf("the key after enable: %d %s", status, body)
	}
	if status, _ := call(http.MethodGet, "/v2/jobs", pair.AccessToken, ""); status != http.StatusUnauthorized {
		t.Fatalf("the session revoked by the disable: %d, want 401", status)
	}
	// A token signed with a key the server does not have would be refused: with another
	// data dir (no key file) the command says so instead of making a key on the spot.
	other := testEnv("STUDIO_NATS_URL="+c.natsURL, "STUDIO_DATA_DIR="+t.TempDir(), "STUDIO_SERVER="+c.api)
	r = studio(t, other, "users", "token", "--tenant", "acme", "--user", "dan")
	if r.code != 1 || !strings.Contains(r.stderr, "no JWT signing keys") || !strings.Contains(r.stderr, "--data-dir") {
		t.Fatalf("users token without the server's keys: want exit 1 naming --data-dir\n%s", r)
	}
	r = studio(t, c.env, "users", "disable", "--tenant", "acme", "--user", "nobody")
	if r.code != 1 || !strings.Contains(r.stderr, auth.ErrUserNotFound.Error()) {
		t.Fatalf("disable of a missing user: want exit 1 saying not found\n%s", r)
	}
}
