package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestUsers(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	users, err := auth.OpenUsers(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*auth.User{
		{Tenant: "acme", ID: "carol", Tier: schemas.TierFree},
		{Tenant: "acme", ID: "alice", Tier: schemas.TierNormal},
		{Tenant: "globex", ID: "alice", Tier: schemas.TierPremium},
	} {
		if err := users.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		run  func() error
		want error
		// anyErr accepts any error (validation failures have no sentinel).
		anyErr bool
	}{
		{name: "a user id is unique within a tenant", run: func() error {
			return users.Create(ctx, &auth.User{Tenant: "acme", ID: "alice", Tier: schemas.TierFree})
		}, want: auth.ErrUserExists},
		{name: "a new user gets the default scopes", run: func() error {
			u, err := users.Get(ctx, "acme", "alice")
			if err == nil && (!u.Principal().Has(auth.ScopeJobsWrite) || u.Principal().Has(auth.ScopeAdmin)) {
				return errors.New("wrong default scopes")
			}
			return err
		}},
		{name: "the same id in another tenant is another user", run: func() error {
			u, err := users.Get(ctx, "globex", "alice")
			if err == nil && u.Tier != schemas.TierPremium {
				return errors.New("got the wrong alice")
			}
			return err
		}},
		{name: "listing a tenant shows only its users, sorted", run: func() error {
			list, err := users.List(ctx, "acme")
			if err == nil && (len(list) != 2 || list[0].ID != "alice" || list[1].ID != "carol") {
				return errors.New("wrong list")
			}
			return err
		}},
		{name: "set-tier changes the tier", run: func() error {
			u, err := users.SetTier(ctx, "acme", "carol", schemas.TierPremium)
			if err == nil && u.Tier != schemas.TierPremium {
				return errors.New("tier unchanged")
			}
			return err
		}},
		{name: "set-tier refuses an unknown tier", run: func() error {
			_, err := users.SetTier(ctx, "acme", "carol", "gold")
			if err == nil {
				return errors.New("accepted gold")
			}
			return nil
		}},
		{name: "set-tier of a missing user is not found", run: func() error {
			_, err := users.SetTier(ctx, "acme", "nobody", schemas.TierFree)
			return err
		}, want: auth.ErrUserNotFound},
		{name: "a deleted user is gone and may be created again", run: func() error {
			if err := users.Delete(ctx, "acme", "carol"); err != nil {
				return err
			}
			if _, err := users.Get(ctx, "acme", "carol"); !errors.Is(err, auth.ErrUserNotFound) {
				return errors.New("still there")
			}
			return users.Create(ctx, &auth.User{Tenant: "acme", ID: "carol", Tier: schemas.TierFree})
		}},
		{name: "ids that are not subject tokens are refused", run: func() error {
			return users.Create(ctx, &auth.User{Tenant: "acme", ID: "a.b", Tier: schemas.TierFree})
		}, anyErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if tc.anyErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// A disabled user's refresh and new logins are refused by the Issuer itself, even
// when the sessions were not revoked; Watch reports the disable, the enable and the
// deletion.
func TestDisabledUsers(t *testing.T) {
	s := streamstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	users, err := auth.OpenUsers(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.OpenTokens(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.LoadOrCreateKeyFile(t.TempDir() + "/jwt-keys")
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := auth.NewIssuer(keys, tokens, users)
	if err != nil {
		t.Fatal(err)
	}
	if err := users.Create(ctx, &auth.User{Tenant: "acme", ID: "dan", Tier: schemas.TierNormal}); err != nil {
		t.Fatal(err)
	}
	pair, err := issuer.Issue(ctx, "acme", "dan")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := users.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() auth.UserChange {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-ctx.Done():
			t.Fatal("no change reported")
		}
		return auth.UserChange{}
	}

	u, err := users.SetDisabled(ctx, "acme", "dan", true)
	if err != nil || !u.Disabled || u.DisabledAt == nil {
		t.Fatalf("disable: %+v %v", u, err)
	}
	if c := next(); c.Tenant != "acme" || c.ID != "dan" || c.User == nil || !c.User.Disabled {
		t.Fatalf("change %+v, want dan disabled", c)
	}
	if _, err := issuer.Refresh(ctx, pair.RefreshToken); !errors.Is(err, auth.ErrUserDisabled) {
		t.Fatalf("refresh of a disabled user: %v", err)
	}
	if _, err := issuer.Issue(ctx, "acme", "dan"); !errors.Is(err, auth.ErrUserDisabled) {
		t.Fatalf("login of a disabled user: %v", err)
	}
	if u, err = users.SetDisabled(ctx, "acme", "dan", false); err != nil || u.Disabled || u.DisabledAt != nil {
		t.Fatalf("enable: %+v %v", u, err)
	}
	if c := next(); c.User == nil || c.User.Disabled {
		t.Fatalf("change %+v, want dan enabled", c)
	}
	if _, err := issuer.Refresh(ctx, pair.RefreshToken); err != nil {
		t.Fatalf("refresh after enable: %v", err)
	}
	if _, err := users.SetDisabled(ctx, "acme", "nobody", true); !errors.Is(err, auth.ErrUserNotFound) {
		t.Fatalf("disable a missing user: %v", err)
	}
	if err := users.Delete(ctx, "acme", "dan"); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.ID != "dan" || c.User != nil {
		t.Fatalf("change %+v, want dan deleted", c)
	}
}
