package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// DefaultWebhookRotationWindow is how long a tenant's previous webhook secret keeps
// signing deliveries after a rotation: time to deploy the new one to its receivers.
const DefaultWebhookRotationWindow = 24 * time.Hour

// WebhookSecret derives generation gen of a tenant's webhook signing secret from the
// configured root secret: hex(HMAC-SHA256(key=root, "studio-webhook-secret/v1/" +
// tenant)) for generation 0, with "/" + gen appended after it for later generations.
// HMAC is one-way, so a tenant holding its own secrets learns nothing of another's,
// nor of the root; the secrets are never stored, only each tenant's generation.
func WebhookSecret(root, tenant string, gen int) string {
	m := hmac.New(sha256.New, []byte(root))
	m.Write([]byte("studio-webhook-secret/v1/"))
	m.Write([]byte(tenant))
	if gen > 0 {
		m.Write([]byte("/" + strconv.Itoa(gen)))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// WebhookGeneration says which of a tenant's secret generations sign its deliveries:
// Current always, Previous until PreviousUntil (a rotation's window). The zero value is
// a tenant never rotated: generation 0 alone.
type WebhookGeneration struct {
	Current       int       `json:"current"`
	Previous      int       `json:"previous"`
	PreviousUntil time.Time `json:"previous_until,omitempty"`
	RotatedAt     time.Time `json:"rotated_at,omitempty"`
}

// Valid returns the generations that sign at now, the current one first.
func (g WebhookGeneration) Valid(now time.Time) []int {
	if g.Current != g.Previous && now.Before(g.PreviousUntil) {
		return []int{g.Current, g.Previous}
	}
	return []int{g.Current}
}

// WebhookSecrets keeps each tenant's webhook secret generation in the KV bucket
// webhook_secrets. Safe for concurrent use; rotations are compare-and-swap updates, so
// two concurrent rotations of one tenant make two generations, never one lost.
type WebhookSecrets struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// OpenWebhookSecrets opens the webhook_secrets bucket.
func OpenWebhookSecrets(ctx context.Context, js jetstream.JetStream) (*WebhookSecrets, error) {
	kv, err := streams.BindKV(ctx, js, BucketWebhookSecrets)
	if err != nil {
		return nil, err
	}
	return &WebhookSecrets{kv: kv, now: time.Now}, nil
}

// Get returns tenant's generation; the zero WebhookGeneration for a tenant never
// rotated.
func (w *WebhookSecrets) Get(ctx context.Context, tenant string) (WebhookGeneration, error) {
	var g WebhookGeneration
	if _, _, err := streams.GetJSON(ctx, w.kv, tenant, &g); err != nil {
		return WebhookGeneration{}, fmt.Errorf("webhook secret generation of %s: %w", tenant, err)
	}
	return g, nil
}

// Rotate starts a new generation of tenant's secret; the one it replaces keeps
// signing for window (DefaultWebhookRotationWindow when 0; a negative window ends it
// at once, for a leaked secret). Other tenants' secrets do not change.
func (w *WebhookSecrets) Rotate(ctx context.Context, tenant string, window time.Duration) (WebhookGeneration, error) {
	if err := schemas.ValidToken(tenant); err != nil {
		return WebhookGeneration{}, fmt.Errorf("tenant %q: %w", tenant, err)
	}
	if window == 0 {
		window = DefaultWebhookRotationWindow
	}
	now := w.now().UTC()
	return streams.UpdateJSON(ctx, w.kv, tenant, func(g *WebhookGeneration, _ bool) error {
		g.Previous, g.Current = g.Current, g.Current+1
		g.RotatedAt, g.PreviousUntil = now, now.Add(window)
		return nil
	})
}

// Secrets returns the secrets that sign tenant's deliveries at now under root, the
// current one first (two during a rotation's window).
func (g WebhookGeneration) Secrets(root, tenant string, now time.Time) []string {
	var out []string
	for _, gen := range g.Valid(now) {
		out = append(out, WebhookSecret(root, tenant, gen))
	}
	return out
}
