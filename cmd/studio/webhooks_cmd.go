package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/schemas"
)

const webhooksUsage = `usage: studio webhooks COMMAND [--tenant T ...] [flags]

  secret  --tenant T [--tenant T2 ...]   print each tenant's webhook signing secret (and the
                                        previous one while a rotation lasts), to hand to the tenant
  rotate  [--tenant T ...]               make a new --webhook-secret and print the steps of the
                                        rotation and each named tenant's secret after it

Tenant secrets are derived from --webhook-secret (STUDIO_WEBHOOK_SECRET), so only an
operator holding it can print them; a tenant's secret verifies only that tenant's
deliveries. A rotation changes every tenant's secret at once; during it deliveries carry
a signature under each.`

var webhooksVerbs = []string{"secret", "rotate"}

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

func runWebhooks(_ context.Context, args []string, stdout io.Writer) error {
	if asked, err := verbHelp(args, webhooksUsage, stdout); asked {
		return err
	}
	sub := args[0]
	if !slices.Contains(webhooksVerbs, sub) {
		return fmt.Errorf("unknown webhooks command %q\n\n%s", sub, webhooksUsage)
	}
	fs := flag.NewFlagSet("studio webhooks "+sub, flag.ContinueOnError)
	cfg := &app.Config{} // --webhook-secret and --webhook-previous-secret
	cfg.RegisterFlags(fs)
	var tenants tenantList
	fs.Var(&tenants, "tenant", "tenant id; repeat or separate with commas")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q\n\n%s", fs.Arg(0), webhooksUsage)
	}
	switch sub {
	case "secret":
		if len(tenants) == 0 {
			return errors.New("name the tenant: --tenant T")
		}
		if cfg.WebhookSecret == "" {
			return errors.New("no --webhook-secret (STUDIO_WEBHOOK_SECRET) is set, so webhooks are off; set the one your ingest processes use")
		}
		for _, t := range tenants {
			fmt.Fprintf(stdout, "%s\tcurrent\t%s\n", t, ingest.TenantWebhookSecret(cfg.WebhookSecret, t))
			if cfg.WebhookPrevSecret != "" {
				fmt.Fprintf(stdout, "%s\tprevious\t%s\n", t, ingest.TenantWebhookSecret(cfg.WebhookPrevSecret, t))
			}
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
