package auth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestATenantsWebhookSecretRotatesAloneWithBothValidDuringTheWindow(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	ws, err := auth.OpenWebhookSecrets(ctx, s.JS)
	require.NoError(t, err)
	const root = "root"
	now := time.Now()

	acme0, err := ws.Get(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, []string{auth.WebhookSecret(root, "acme", 0)}, acme0.Secrets(root, "acme", now), "never rotated: generation 0 alone")

	acme1, err := ws.Rotate(ctx, "acme", time.Hour)
	require.NoError(t, err)
	require.Equal(t, 1, acme1.Current)
	got := acme1.Secrets(root, "acme", now)
	require.Equal(t, []string{auth.WebhookSecret(root, "acme", 1), auth.WebhookSecret(root, "acme", 0)}, got, "the new secret first, the old one during the window")
	require.Equal(t, []string{auth.WebhookSecret(root, "acme", 1)}, acme1.Secrets(root, "acme", now.Add(2*time.Hour)), "after the window only the new one")

	globex, err := ws.Get(ctx, "globex")
	require.NoError(t, err)
	require.Equal(t, []string{auth.WebhookSecret(root, "globex", 0)}, globex.Secrets(root, "globex", now), "another tenant's secret did not change")
	for _, a := range got {
		require.NotEqual(t, auth.WebhookSecret(root, "globex", 0), a)
		require.NotEqual(t, auth.WebhookSecret(root, "globex", 1), a, "generations of different tenants differ")
	}

	// A leaked secret: a rotation with a negative window ends the old one at once.
	acme2, err := ws.Rotate(ctx, "acme", -1)
	require.NoError(t, err)
	require.Equal(t, []string{auth.WebhookSecret(root, "acme", 2)}, acme2.Secrets(root, "acme", time.Now()))

	// Concurrent rotations (two replicas) each make a generation; none is lost.
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ws.Rotate(ctx, "acme", 0)
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	g, err := ws.Get(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, 7, g.Current)
	require.Equal(t, 6, g.Previous)

	_, err = ws.Rotate(ctx, "a.b", 0)
	require.Error(t, err, "a tenant id is a subject token")
}
