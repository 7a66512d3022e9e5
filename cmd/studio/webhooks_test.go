package main

import (
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// `studio webhooks rotate-tenant` rotates the named tenant's secret alone, against a
// real NATS server; `secret --nats-url` then prints the new one and, during the
// window, the old one; another tenant's secret is what it was.
func TestWebhooksRotateTenantRotatesOneTenantsSecret(t *testing.T) {
	const root = "root-secret-for-the-test"
	s := streamstest.Start(t)
	url := s.Embedded.ClientURL()
	env := testEnv("STUDIO_WEBHOOK_SECRET=" + root)
	gen := func(tenant string, g int) string { return auth.WebhookSecret(root, tenant, g) }

	r := studio(t, env, "webhooks", "rotate-tenant", "--tenant", "acme", "--nats-url", url)
	expect(t, r, 0, "acme\tcurrent\t"+gen("acme", 1)+"\n", "acme\tprevious\t"+gen("acme", 0)+"\tuntil ")

	r = studio(t, env, "webhooks", "secret", "--tenant", "acme,globex", "--nats-url", url)
	expect(t, r, 0, "acme\tcurrent\t"+gen("acme", 1)+"\n", "acme\tprevious\t"+gen("acme", 0), "globex\tcurrent\t"+gen("globex", 0)+"\n")
	if strings.Contains(r.stdout, "globex\tprevious") {
		t.Errorf("globex was not rotated, yet has a previous secret\n%s", r)
	}

	r = studio(t, env, "webhooks", "rotate-tenant", "--tenant", "acme", "--window", "0", "--nats-url", url)
	expect(t, r, 0, "acme\tcurrent\t"+gen("acme", 2)+"\n")
	if strings.Contains(r.stdout, "previous") {
		t.Errorf("a window of 0 ended the old secret, yet it is printed\n%s", r)
	}

	r = studio(t, env, "webhooks", "rotate-tenant", "--tenant", "acme")
	if r.code == 0 || !strings.Contains(r.stderr, "--nats-url") {
		t.Fatalf("rotate-tenant without NATS must say so\n%s", r)
	}
}
