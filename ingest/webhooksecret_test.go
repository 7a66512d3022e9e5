package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func webhookSecretsOption(t *testing.T) func(*streamstest.Server) []ingest.Option {
	return func(s *streamstest.Server) []ingest.Option {
		ws, err := auth.OpenWebhookSecrets(context.Background(), s.JS)
		require.NoError(t, err)
		return []ingest.Option{ingest.WithWebhookSecrets(ws)}
	}
}

// A tenant admin reads and rotates its own tenant's webhook secret, and nobody else's:
// the rotation changes no other tenant's secret, the old secret stays valid for the
// window, and a window of 0s ends it at once (a leaked secret).
func TestATenantAdminRotatesItsOwnWebhookSecretOnly(t *testing.T) {
	ctx := context.Background()
	e := newSecureEnvOpts(t, ingest.Config{WebhookSecret: webhookSecret}, nil, webhookSecretsOption(t))
	tbAdmin := auth.User{Tenant: "tb", ID: "boss", Tier: schemas.TierNormal, Scopes: []auth.Scope{auth.ScopeAdmin}}
	require.NoError(t, e.sec.Users.Create(ctx, &tbAdmin))
	pair, err := e.sec.Issuer.Issue(ctx, "tb", "boss")
	require.NoError(t, err)
	e.tokens["boss"] = pair.AccessToken
	get := func(method, path, user string) (ingest.WebhookSecretView, authResponse) {
		r := e.call(t, method, path, e.tokens[user], nil, "")
		var v ingest.WebhookSecretView
		if r.status == http.StatusOK {
			require.NoError(t, json.Unmarshal(r.body, &v), "%s", r.body)
		}
		return v, r
	}

	_, r := get(http.MethodGet, "/v2/admin/webhook-secret", "bob")
	require.Equal(t, http.StatusForbidden, r.status, "a user without admin sees no secret: %s", r.body)
	_, r = get(http.MethodPost, "/v2/admin/webhook-secret/rotate", "bob")
	require.Equal(t, http.StatusForbidden, r.status, "nor rotates it: %s", r.body)

	v, r := get(http.MethodGet, "/v2/admin/webhook-secret", "alice")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, ingest.WebhookSecretView{Tenant: "ta", Secret: ingest.TenantWebhookSecret(webhookSecret, "ta")}, v)
	tbBefore, r := get(http.MethodGet, "/v2/admin/webhook-secret", "boss")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, "tb", tbBefore.Tenant, "an admin sees its own tenant's")

	v, r = get(http.MethodPost, "/v2/admin/webhook-secret/rotate", "alice")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, 1, v.Generation)
	require.Equal(t, auth.WebhookSecret(webhookSecret, "ta", 1), v.Secret)
	require.Equal(t, ingest.TenantWebhookSecret(webhookSecret, "ta"), v.Previous, "the old secret stays valid during the window")
	require.WithinDuration(t, time.Now().Add(auth.DefaultWebhookRotationWindow), *v.PreviousUntil, time.Minute)

	tbAfter, _ := get(http.MethodGet, "/v2/admin/webhook-secret", "boss")
	require.Equal(t, tbBefore, tbAfter, "ta's rotation left tb's secret as it was")
	require.NotEqual(t, v.Secret, tbAfter.Secret)

	v, r = get(http.MethodPost, "/v2/admin/webhook-secret/rotate?window=0s", "alice")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, 2, v.Generation)
	require.Empty(t, v.Previous, "a window of 0s ends the old secret at once")

	_, r = get(http.MethodPost, "/v2/admin/webhook-secret/rotate?window=forever", "alice")
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.body)
}

// Deliveries to a tenant in its rotation's window carry a v1 under the new and the old
// secret; neither verifies under another tenant's secrets.
func TestDeliveriesOfATenantInItsRotationWindowCarryBothSignatures(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t, webhookConfig())
	ws, err := auth.OpenWebhookSecrets(ctx, p.srv.JS)
	require.NoError(t, err)
	ingest.WithWebhookSecrets(ws)(p.svc)         // before the senders start
	g, err := ws.Rotate(ctx, "local", time.Hour) // the development tenant
	require.NoError(t, err)
	require.Equal(t, 1, g.Current)
	_, err = ws.Rotate(ctx, "other", time.Hour)
	require.NoError(t, err)

	hook := newReceiver(t, 0)
	job := p.submitPNG(t, field("callback_url", hook.srv.URL+"/hook"))
	p.runWebhooks(t)
	p.runAll()
	p.openAll()
	streamsEventually(t, func() bool { return hook.count() >= 1 }, "webhook not delivered")

	c := hook.get(0)
	var ev schemas.ResultEvent
	require.NoError(t, json.Unmarshal(c.body, &ev))
	require.Equal(t, job.ID, ev.JobID)
	require.Equal(t, "local", ev.Tenant)
	sig := c.header.Get(ingest.HeaderSignature)
	require.Equal(t, 2, strings.Count(sig, "v1="), sig)
	now := time.Now()
	require.True(t, ingest.VerifyWebhook(sig, c.body, auth.WebhookSecret(webhookSecret, "local", 1), now, 5*time.Minute), "the new secret verifies")
	require.True(t, ingest.VerifyWebhook(sig, c.body, auth.WebhookSecret(webhookSecret, "local", 0), now, 5*time.Minute), "the old one too, during the window")
	for gen := range 3 {
		require.False(t, ingest.VerifyWebhook(sig, c.body, auth.WebhookSecret(webhookSecret, "other", gen), now, 5*time.Minute), "another tenant's generation %d does not", gen)
	}
}
