package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
)

const webhooksUsage = `usage: studio webhooks COMMAND [--tenant T ...] [flags]

  secret         --tenant T [--tenant T2 ...]   print each tenant's webhook signing secret (and the
                                                previous one while a rotation lasts), to hand to the tenant
  rotate-tenant  --tenant T [--window 24h]      start a new secret for the named tenants only; for
                                                --window deliveries are signed with the old one too
  rotate         [--tenant T ...]               make a new --webhook-secret (every tenant's secrets
                                                change) and print the steps of that rotation

Tenant secrets are derived from --webhook-secret (STUDIO_WEBHOOK_SECRET), the tenant id and
the tenant's generation, so only an operator holding the root secret can print them; a
tenant's secret verifies only that tenant's deliveries. rotate-tenant and, with --nats-url,
secret read each tenant's generation from NATS (bucket webhook_secrets); without --nats-url,
secret prints generation 0, the secret of a tenant never rotated. A tenant admin can do the
same for its own tenant: GET /v2/admin/webhook-secret, POST /v2/admin/webhook-secret/rotate.`

var webhooksVerbs = []string{"secret", "rotate-tenant", "rotate"}

// tenantList is a repeatable --tenant flag.
type tenantList []string

func (l *tenantList) String() string { return strings.Join(*l, ",") }

func (l *tenantList) Set(v string) error {
	for _, t := range strings.Split(v, ",") {
		if err := schemas.ValidToken(t); err != nil {
			return fmt.Errorf("tenant %q: %w", t, err)
		}
		*l = append(*l, t)
	}
	return nil
}

func runWebhooks(ctx context.Context, args []string, stdout io.Writer) error {
	sub, fs, done, err := verbOf("webhooks", webhooksVerbs, args, webhooksUsage, stdout)
	if done {
		return err
	}
	cfg := &app.Config{} // --webhook-secret and --webhook-previous-secret
	cfg.RegisterFlags(fs)
	var tenants tenantList
	fs.Var(&tenants, "tenant", "tenant id; repeat or separate with commas")
	var window time.Duration
	fs.DurationVar(&window, "window", auth.DefaultWebhookRotationWindow, "rotate-tenant: how long the previous secret keeps signing deliveries; 0 ends it at once (a leaked secret)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q\n\n%s", fs.Arg(0), webhooksUsage)
	}
	switch sub {
	case "secret", "rotate-tenant":
		if len(tenants) == 0 {
			return errors.New("name the tenant: --tenant T")
		}
		if cfg.WebhookSecret == "" {
			return errors.New("no --webhook-secret (STUDIO_WEBHOOK_SECRET) is set, so webhooks are off; set the one your ingest processes use")
		}
		var ws *auth.WebhookSecrets
		if cfg.NATSURL != "" || sub == "rotate-tenant" {
			if cfg.NATSURL == "" {
				return errors.New("rotate-tenant changes the tenant's generation in NATS: set --nats-url (STUDIO_NATS_URL)")
			}
			log, err := newLogger(cfg.LogLevel, io.Discard)
			if err != nil {
				return err
			}
			bus, err := app.Connect(ctx, cfg, "studio-webhooks", log)
			if err != nil {
				return err
			}
			defer bus.Close()
			if ws, err = auth.OpenWebhookSecrets(ctx, bus.JS); err != nil {
				return err
			}
		}
		for _, t := range tenants {
			var g auth.WebhookGeneration
			var err error
			switch {
			case sub == "rotate-tenant":
				w := window
				if w == 0 {
					w = -1 // Rotate's 0 is its default; here it ends the old secret now
				}
				g, err = ws.Rotate(ctx, t, w)
			case ws != nil:
				g, err = ws.Get(ctx, t)
			}
			if err != nil {
				return err
			}
			printTenantSecrets(stdout, cfg, t, g)
		}
		return nil
	default: // rotate
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("no randomness for a new secret: %w", err)
		}
		next := base64.RawURLEncoding.EncodeToString(b)
		fmt.Fprintf(stdout, "new webhook secret: %s\n\n", next)
		fmt.Fprintln(stdout, "Rotation (every tenant at once):")
		if cfg.WebhookSecret != "" {
			fmt.Fprintln(stdout, "  1. on every ingest process set STUDIO_WEBHOOK_PREVIOUS_SECRET to the current STUDIO_WEBHOOK_SECRET")
			fmt.Fprintln(stdout, "     and STUDIO_WEBHOOK_SECRET to the new one, and restart: deliveries carry both signatures;")
		} else {
			fmt.Fprintln(stdout, "  1. on every ingest process set STUDIO_WEBHOOK_SECRET to the new secret and restart;")
		}
		fmt.Fprintln(stdout, "  2. hand each tenant its new secret (below, or `studio webhooks secret --tenant T` after step 1);")
		fmt.Fprintln(stdout, "  3. once every receiver verifies with it, unset STUDIO_WEBHOOK_PREVIOUS_SECRET and restart.")
		for _, t := range tenants {
			fmt.Fprintf(stdout, "%s\tnext\t%s\n", t, ingest.TenantWebhookSecret(next, t))
		}
		return nil
	}
}

// printTenantSecrets writes tenant's signing secrets under generation g: "current",
// "previous" (with its end) during g's rotation window, and the same under
// --webhook-previous-secret while the root secret's rotation lasts.
func printTenantSecrets(w io.Writer, cfg *app.Config, tenant string, g auth.WebhookGeneration) {
	now := time.Now()
	gens := g.Valid(now)
	fmt.Fprintf(w, "%s\tcurrent\t%s\n", tenant, auth.WebhookSecret(cfg.WebhookSecret, tenant, gens[0]))
	if len(gens) > 1 {
		fmt.Fprintf(w, "%s\tprevious\t%s\tuntil %s\n", tenant, auth.WebhookSecret(cfg.WebhookSecret, tenant, gens[1]), g.PreviousUntil.Format(time.RFC3339))
	}
	if cfg.WebhookPrevSecret != "" {
		for _, gen := range gens {
			fmt.Fprintf(w, "%s\tprevious\t%s\n", tenant, auth.WebhookSecret(cfg.WebhookPrevSecret, tenant, gen))
		}
	}
}
